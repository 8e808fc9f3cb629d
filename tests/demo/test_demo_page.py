"""The demo end to end: the tiny sweep served by a real TensorBoard, its XAI tab checked in Chromium by
demo/check_page.py (the logic of `make demo-check`), as a function and as the script."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from demo import check_page, data, train
from tb_xai_plugin import files
from tests.browser.conftest import browser_context, bundle, serve_tensorboard  # noqa: F401  (fixtures)
from tests.conftest import free_port

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "demo", "check_page.py")
DEMO_RUNS = {"cnn", "resnet", "sepconv", "cnn-biased"}


@pytest.fixture(scope="module")
def demo_board(tiny_sweep, bundle, tmp_path_factory):  # noqa: F811
    """Base URL of a real TensorBoard over the tiny demo sweep."""
    logdir, _ = tiny_sweep
    with serve_tensorboard(logdir, str(tmp_path_factory.mktemp("demo-xai-cache"))) as url:
        yield url


@pytest.fixture(scope="module")
def page(browser_context):  # noqa: F811
    page = browser_context.new_page()
    yield page
    page.close()


@pytest.fixture(scope="module")
def seen(demo_board, page):
    """What check_page.check saw on the demo's XAI tab."""
    return check_page.check(page, demo_board, timeout_s=300)


def test_every_demo_run_is_in_the_model_picker(seen):
    assert set(train.RUNS) == DEMO_RUNS
    assert sorted(seen["runs"]) == sorted(DEMO_RUNS)


def test_the_biased_run_and_the_clean_cnn_draw_gradient_maps(seen):
    cells = seen["cells"]
    assert sorted(cell["key"][1] for cell in cells) == ["cnn", "cnn-biased"]
    assert {cell["key"][3] for cell in cells} == {"gradient"}
    assert {cell["key"][2] for cell in cells} == {2}  # the latest of the tiny sweep's two checkpoints
    for cell in cells:
        canvas = cell["canvas"]
        assert cell["state"] == "ready", cell
        assert canvas["pixels"] > 0 and canvas["opaque"] == canvas["pixels"], canvas
        assert canvas["colours"] >= check_page.MIN_COLOURS, canvas


def test_each_cell_shows_the_models_top_predictions(seen):
    for cell in seen["cells"]:
        names = [name for name, _ in cell["predictions"]]
        scores = [score for _, score in cell["predictions"]]
        assert len(names) >= 3 and set(names) <= set(data.CLASS_NAMES), cell
        assert scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 1e-2, cell
    assert len(seen["samples"]) == 1 and seen["samples"][0].startswith("#0"), seen["samples"]  # the first sample


def test_each_cell_marks_its_top_prediction_by_the_stored_label(seen, tiny_sweep):
    for cell in seen["cells"]:
        sample, run = cell["key"][:2]
        (path, manifest), = [e for e in files.sample_listing(os.path.join(tiny_sweep[0], run)) if e[1]["name"] == train.SAMPLES_NAME]
        label = data.CLASS_NAMES[files.read_sample_set(path, manifest["sha256"])[1][sample]]
        assert cell["mark"].endswith("right" if cell["predictions"][0][0] == label else "wrong"), (cell, label)


def test_a_run_the_picker_lacks_is_named_in_the_error(demo_board, page):
    with pytest.raises(check_page.XaiError, match="lacks run\\(s\\) no-such-run; it lists: .*cnn-biased"):
        check_page.check(page, demo_board, runs=["cnn", "no-such-run"], timeout_s=15)


def test_the_script_prints_what_it_saw_and_saves_a_screenshot(demo_board, tmp_path):
    shot = tmp_path / "tab.png"
    result = _script("--url", demo_board, "--screenshot", str(shot))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "demo-check OK" in result.stdout
    listed = next(line for line in result.stdout.splitlines() if line.startswith("model picker lists"))
    assert all(run in listed for run in DEMO_RUNS), listed
    assert sum("map drawn" in line for line in result.stdout.splitlines()) == 2, result.stdout
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[1] >= check_page.VIEWPORT["width"] and pixels.reshape(-1, 3).std(axis=0).max() > 10


def test_the_script_exits_1_with_a_message_when_nothing_serves_the_url():
    result = _script("--url", "http://127.0.0.1:%d" % free_port(), "--timeout", "20")
    assert result.returncode == 1
    assert "demo-check FAILED" in result.stderr and "ERR_CONNECTION_REFUSED" in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def _script(*args):
    """demo/check_page.py run as `make demo-check` runs it."""
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=400, check=False)
