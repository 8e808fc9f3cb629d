"""`tb-xai precompute` on Beam's DirectRunner (2 worker processes), and the plugin answering from its result store.

One pipeline run per module: runs "a" (steps 1, 2, with the sample set "val") and "b" (step 1, no
samples of its own: --samples-run a), predictions for suggestions and gradient maps.
"""

import contextlib
import io
import os
import shutil
import sys

import numpy as np
import psutil
import pytest

from tb_xai_plugin import cli
from tb_xai_plugin.plugin import encoding, result_store
from tb_xai_plugin.plugin.cache import key_digest
from tests.plugin.conftest import SCALE, Served, body_of, cnn_images, tiny_cnn, write_run

MODELS = [{"run": "a", "step": 1}, {"run": "a", "step": 2}, {"run": "b", "step": 1}]
SAMPLES = {"run": "a", "name": "val"}
BEAM_ARGS = ["--runner", "DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]


def gradient_body(indices):
    """The attributions request the tab sends for gradient maps of every model at `indices`."""
    return {"models": MODELS, "samples": SAMPLES, "indices": indices, "methods": [{"id": "gradient"}]}


def result_files(logdir, run):
    """The .npz files in a run's result store."""
    folder = result_store.results_dir(os.path.join(logdir, run))
    return sorted(os.path.join(root, n) for root, _, names in os.walk(folder) for n in names if n.endswith(".npz"))


@pytest.fixture(scope="module")
def precomputed(tmp_path_factory):
    """(logdir, the command's output) after one precompute run."""
    logdir = str(tmp_path_factory.mktemp("logdir"))
    images, labels = cnn_images()
    write_run(logdir, "a", {1: tiny_cnn(1), 2: tiny_cnn(2)}, [("val", images, labels)], preprocessing=SCALE)
    write_run(logdir, "b", {1: tiny_cnn(3)}, [], preprocessing=SCALE)
    argv = ["precompute", "--logdir", logdir, "--samples-run", "a", "--samples", "val", "--methods", "gradient"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(argv + BEAM_ARGS) == 0
    return logdir, out.getvalue()


@pytest.fixture(scope="module")
def served(precomputed, tmp_path_factory):
    """A plugin with one worker slot on the precomputed logdir."""
    server = Served(precomputed[0], str(tmp_path_factory.mktemp("cache")), xai_workers=1)
    yield server
    server.close()


def test_the_pipeline_writes_every_result_into_its_runs_store(precomputed):
    logdir, out = precomputed
    # per checkpoint: predictions on the whole set (1 file) and one gradient map per sample (6 files)
    assert "6 items, 21 results written, 0 already stored, 0 failed" in out
    assert len(result_files(logdir, "a")) == 14 and len(result_files(logdir, "b")) == 7
    assert not [p for p in result_files(logdir, "a") if ".tmp-" in p]


def test_requests_covered_by_precomputed_results_start_no_worker(served):
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    maps = served.post("attributions", gradient_body(list(range(6))))
    predictions = served.post("predictions", {"models": MODELS, "samples": SAMPLES, "indices": [0, 3]})
    suggestions = served.post("suggestions", {"models": MODELS, "samples": SAMPLES})
    assert [r.status_code for r in (maps, predictions, suggestions)] == [200, 200, 200]
    assert all(cell["ok"] for cell in body_of(maps)["cells"])
    assert all(m["ok"] for m in body_of(predictions)["models"]) and all(m["ok"] for m in body_of(suggestions)["per_model"])
    pool = served.plugin.pool
    assert pool.stats["submitted"] == 0 and pool.stats["started"] == 0 and pool.pids() == []
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= children  # no worker process spawned
    assert served.plugin.results.stats["hits"] == 3 * 6 + 3  # maps, then one whole-set prediction per model


def test_precomputed_maps_are_what_the_plugins_own_worker_computes(served, precomputed, tmp_path):
    stored = body_of(served.post("attributions", gradient_body([1, 4])))["cells"]
    plain = Served(precomputed[0], str(tmp_path / "cache"), xai_workers=1)
    plain.plugin.service.results = None  # the plugin without its result store ...
    try:
        computed = body_of(plain.post("attributions", gradient_body([1, 4])))["cells"]
        assert plain.plugin.pool.stats["started"] == 1  # ... asks its worker
    finally:
        plain.close()
    for mine, theirs in zip(stored, computed):
        a, b = encoding.decode_float32(mine), encoding.decode_float32(theirs)
        # the same code on the same float32 inputs; allow for another batch composition (accumulation order)
        assert np.abs(a - b).max() <= 64 * np.finfo(np.float32).eps * np.abs(b).max()
        assert mine["targets"] == theirs["targets"] and mine["scores"] == pytest.approx(theirs["scores"], rel=1e-5)


def test_a_rerun_writes_nothing_already_stored(precomputed, tmp_path):
    from tb_xai_plugin.precompute import inline, plan

    logdir = str(tmp_path / "copy")
    shutil.copytree(precomputed[0], logdir)
    items = plan.plan(logdir, runs=["b"], methods=["gradient"], samples="val", samples_run="a")
    computer = inline.Computer(logdir, plan.run_names(logdir))
    outs = [computer.compute(item) for item in items]
    assert [(o["written"], o["stored"], o["failed"]) for o in outs] == [(0, 1, []), (0, 6, [])]
    assert computer.pool.stats["computed"] == 0


def copy_to_ram(local, remote):
    """Copy a local folder but its result stores into TensorFlow's in-memory filesystem (ram://): a logdir off the local disk."""
    import tensorflow as tf

    for root, dirs, names in os.walk(local):
        dirs[:] = [d for d in dirs if d != result_store.RESULTS_DIR]
        relative = os.path.relpath(root, local)
        target = remote if relative == "." else "/".join([remote] + relative.split(os.sep))
        tf.io.gfile.makedirs(target)
        for name in names:
            tf.io.gfile.copy(os.path.join(root, name), target + "/" + name, overwrite=True)


def test_a_logdir_off_the_local_disk_is_precomputed_and_served_through_gfile(precomputed, tmp_path):
    from tb_xai_plugin.precompute import inline, plan

    remote = "ram://precompute-%s" % tmp_path.name
    copy_to_ram(precomputed[0], remote)
    items = plan.plan(remote, runs=["b"], methods=["gradient"], samples="val", samples_run="a")
    computer = inline.Computer(remote, plan.run_names(remote), {"checkpoint_cache_dir": str(tmp_path / "copies")})
    assert [computer.compute(item)["written"] for item in items] == [1, 6]
    assert not os.path.exists("ram:") and not os.path.exists(os.path.join(str(tmp_path), "ram:"))
    server = Served(remote, str(tmp_path / "cache"), xai_workers=1)
    try:
        body = dict(gradient_body([0, 5]), models=[{"run": "b", "step": 1}])
        response = server.post("attributions", body)
        assert response.status_code == 200, response.get_data(as_text=True)
        cells = body_of(response)["cells"]
        assert cells[0]["ok"] and server.plugin.pool.stats["submitted"] == 0 and server.plugin.results.stats["hits"] == 2
    finally:
        server.close()


def test_a_result_under_another_keys_name_is_ignored(tmp_path):
    store = result_store.ResultStore()
    checkpoint = os.path.join(str(tmp_path), "run", "plugins", "xai", "checkpoints", "step-000000001.keras")
    folder = result_store.results_dir_of_checkpoint(checkpoint)
    right, wrong = ("probs-all", "x"), ("probs-all", "y")
    os.makedirs(os.path.join(folder, key_digest(right)[:2]))
    with open(result_store.result_path(folder, key_digest(right)), "wb") as f:
        f.write(result_store.encode(wrong, {"probs": np.ones((2, 3), np.float32)}))
    assert store.get(checkpoint, right) is None and store.stats["unreadable"] == 1
    assert store.get(checkpoint, wrong) is None and store.stats["misses"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--methods", "no_such_method"], "no_such_method"),
        (["--runs", "zzz"], "no run zzz"),
        (["--samples", "missing"], "no sample set named 'missing'"),
        (["--methods", "gradient", "--target", "best"], "--target must be"),
        (["--methods", "gradient", "--params", "[1]"], "--params must be a JSON object"),
        (["--steps", "9"], "no step of run 'a': 9"),
    ],
)
def test_bad_arguments_fail_before_any_work(precomputed, capsys, args, message):
    logdir = precomputed[0]
    before = result_files(logdir, "a") + result_files(logdir, "b")
    argv = ["precompute", "--logdir", logdir, "--samples-run", "a", "--samples", "val"] + args
    assert cli.main(argv + BEAM_ARGS) == 2
    assert message in capsys.readouterr().err
    assert result_files(logdir, "a") + result_files(logdir, "b") == before


def test_without_beam_the_command_says_how_to_install_it(precomputed, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "apache_beam", None)  # import apache_beam raises ImportError
    assert cli.main(["precompute", "--logdir", precomputed[0], "--samples-run", "a", "--samples", "val"]) == 2
    assert "pip install apache-beam==2.77.0" in capsys.readouterr().err


def test_a_layer_adds_its_activations_and_the_layer_methods_maps(precomputed, tmp_path):
    from tb_xai_plugin.precompute import inline, plan

    logdir = str(tmp_path / "copy")
    shutil.copytree(precomputed[0], logdir, ignore=shutil.ignore_patterns(result_store.RESULTS_DIR))
    items = plan.plan(logdir, runs=["a"], steps=[2], methods=["grad_cam"], samples="val", layer="conv", neuron=1)
    computer = inline.Computer(logdir, plan.run_names(logdir))
    assert [computer.compute(item) for item in items] == [
        {"written": 2, "stored": 0, "failed": []},  # predictions and the layer's mean activations
        {"written": 6, "stored": 0, "failed": []},
    ]
    server = Served(logdir, str(tmp_path / "cache"), xai_workers=1)
    try:
        model = [{"run": "a", "step": 2}]
        suggested = body_of(server.post("suggestions", {"models": model, "samples": SAMPLES, "layer": "conv", "neuron": 1}))
        body = {"models": model, "samples": SAMPLES, "indices": [2, 3], "methods": [{"id": "grad_cam"}], "layer": "conv", "neuron": 1}
        maps = body_of(server.post("attributions", body))
        assert suggested["activation"]["ok"] and len(suggested["activation"]["mean"]) == 6 and maps["cells"][0]["ok"]
        assert server.plugin.pool.stats["submitted"] == 0
    finally:
        server.close()
