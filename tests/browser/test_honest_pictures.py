"""Honest pictures, in Chromium against a real TensorBoard: each map on its own range, a constant map
drawn as constant with a note, shared ranges only on request, failed cells retried by Refresh, and a
sample set logged again shown with its new image (versioned URLs), never an old one under a new map.

The logdir: run "lin", a linear model (Flatten -> Dense(4)) at steps 1 and 2, run "flaky" (another
at step 3, shown only by the retry test), and sample set "val" in "lin" of three float images: a pattern P, P / 100 and zeros. Input x gradient of logit 0 is x * w0, so
the three maps differ only by their scale: 1, 1/100 and 0 (constant).
"""

import io
import json
import os
import shutil
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.browser.conftest import SCREENSHOTS, serve_tensorboard
from tests.browser.test_xai_tab import CANVAS_STATS, WAIT_MS, wait_for_frame, wait_grid

CLASSES = ["a", "b", "c", "d"]
SCALES = (1.0, 0.01, 0.0)
EPS = float(np.finfo(np.float32).eps)


def pattern(seed):
    """A 28x28x1 float32 image in [0.1, 1]."""
    return (0.1 + 0.9 * np.random.default_rng(seed).random((28, 28, 1))).astype(np.float32)


def val_images(seed):
    """P, P / 100 and zeros: maps of one shape at scales 1, 1/100 and 0."""
    p = pattern(seed)
    return np.stack([p * np.float32(s) for s in SCALES])


def linear_model(seed):
    """28x28x1 -> Flatten -> Dense(4, softmax) with random weights drawn from `seed`."""
    import tensorflow as tf

    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Flatten(name="flatten")(inputs)
    outputs = tf.keras.layers.Dense(4, activation="softmax", name="dense")(x)
    model = tf.keras.Model(inputs, outputs, name="linear")
    rng = np.random.default_rng(seed)
    model.get_layer("dense").set_weights([rng.normal(0, 1, (784, 4)).astype(np.float32), np.zeros(4, np.float32)])
    return model


def log_samples(run_dir, images):
    """Log (or log again) sample set 'val' into a run folder."""
    from tb_xai_plugin import summary

    writer = summary.create_file_writer(run_dir)
    with writer.as_default():
        assert summary.samples("val", images, step=0, labels=np.arange(len(images)) % 4, class_names=CLASSES)
    writer.flush()
    writer.close()


def build_logdir(root):
    """Run 'lin': a linear model at steps 1 and 2, and sample set 'val'; run 'flaky': one at step 3."""
    from tb_xai_plugin import summary

    run_dir = os.path.join(root, "lin")
    for run, steps in (("lin", (1, 2)), ("flaky", (3,))):  # each its own weights, so its own cache entries
        writer = summary.create_file_writer(os.path.join(root, run))
        with writer.as_default():
            for step in steps:
                assert summary.checkpoint(linear_model(seed=step), step=step, class_names=CLASSES)
        writer.flush()
        writer.close()
    log_samples(run_dir, val_images(seed=1))
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory, bundle):
    """(base URL, logdir) of a real tensorboard over the logdir above."""
    logdir = build_logdir(str(tmp_path_factory.mktemp("honest-logdir")))
    with serve_tensorboard(logdir, str(tmp_path_factory.mktemp("honest-cache"))) as url:
        yield url, logdir


def open_tab(context, url, step, rows, run="lin", method="input_t_gradient"):
    """A page on the XAI tab showing `method` of run@step on rows of 'val', explaining class 0; (page, frame)."""
    state = {"s": ["lin", "val"], "m": [[run, step]], "a": [[method, {}]], "t": 0, "r": rows, "o": 1}
    page = context.new_page()
    page.goto(url + "/#xai&xai=" + urllib.parse.quote(json.dumps(state)))
    frame = wait_for_frame(page)
    frame.wait_for_selector("#xai-grid", timeout=WAIT_MS)
    return page, frame


def cells(frame, grid="#xai-grid"):
    """Per cell: its state, own range, shown domain, constant flag, note and legend title."""
    return frame.evaluate(
        """(g) => [...document.querySelectorAll(g + ' .xai-cell')].map(c => ({
             state: c.dataset.state, range: c.dataset.range, domain: c.dataset.domain, constant: c.dataset.constant,
             note: (c.querySelector('.xai-constant') || {}).textContent || null,
             legend: (c.querySelector('.xai-legend') || {}).title || null,
             error: (c.querySelector('.xai-error') || {}).textContent || null}))""",
        grid,
    )


def numbers(text):
    """The floats of 'a,b'."""
    return [float(v) for v in text.split(",")]


def test_each_map_keeps_its_own_range_and_a_constant_map_says_so(server, browser_context):
    url, _ = server
    page, frame = open_tab(browser_context, url, 1, [0, 1, 2])  # one request for the three maps
    assert wait_grid(frame) == ["ready"] * 3
    big, small, zero = cells(frame)
    lo, hi = numbers(big["range"])
    assert lo < 0 < hi  # x * w0 with w0 of both signs
    for got, want in zip(numbers(small["range"]), (lo * 0.01, hi * 0.01)):
        assert got == pytest.approx(want, rel=8 * EPS)  # its own range, 1/100 of the first one's
    assert numbers(small["domain"])[1] == pytest.approx(numbers(big["domain"])[1] * 0.01, rel=8 * EPS)
    assert big["legend"] != small["legend"]  # each legend names its own values
    assert big["constant"] == small["constant"] == "false" and big["note"] is None

    assert zero["constant"] == "true" and zero["range"] == "0,0"
    assert zero["note"] == "constant map: every value is 0" and zero["legend"] is None and zero["domain"] == ""
    (flat,) = frame.evaluate(CANVAS_STATS, "#xai-grid .xai-cell[data-constant=true] canvas.xai-map")
    assert flat["colors"] == 1  # one flat colour at full opacity, not a colour scale's middle
    assert frame.evaluate(
        "() => { const d = document.querySelector('.xai-cell[data-constant=true] canvas').getContext('2d')"
        ".getImageData(5, 5, 1, 1).data; return [d[0], d[1], d[2]]; }"
    ) == [158, 158, 158]

    # the value under the pointer: the same pixel, each map's own value, 1/100 apart
    frame.locator("#xai-grid canvas.xai-map").first.hover(position={"x": 40, "y": 70})
    readouts = frame.evaluate("[...document.querySelectorAll('#xai-grid .xai-readout')].map(r => r.textContent)")
    values = [float(r.split(": ")[1]) for r in readouts]
    assert len({r.split(":")[0] for r in readouts}) == 1 and values[2] == 0
    assert values[1] == pytest.approx(values[0] * 0.01, rel=0.05)  # 2-3 significant digits shown
    frame.locator("#xai-grid").screenshot(path=os.path.join(SCREENSHOTS, "own_ranges.png"))
    page.close()


def test_shared_ranges_are_explicit_choices(server, browser_context):
    url, _ = server
    page, frame = open_tab(browser_context, url, 1, [0, 1, 2])
    wait_grid(frame)
    own = [c["domain"] for c in cells(frame)]
    frame.select_option("#xai-scale", "grid")
    frame.wait_for_function("new Set([...document.querySelectorAll('#xai-grid .xai-cell')].map(c => c.dataset.domain)).size === 1")
    shared = cells(frame)
    assert shared[0]["domain"] == own[0]  # the largest map's range covers the grid
    assert shared[2]["constant"] == "true" and shared[2]["note"]  # coloured by the shared range, still noted
    frame.select_option("#xai-scale", "row")  # one column: each row is its own group again
    frame.wait_for_function("(d) => [...document.querySelectorAll('#xai-grid .xai-cell')].map(c => c.dataset.domain).join('|') === d", arg="|".join(own))
    frame.select_option("#xai-scale", "own")
    page.close()


def test_refresh_retries_a_failed_cell(server, browser_context):
    url, logdir = server
    folder = os.path.join(logdir, "flaky", "plugins", "xai", "checkpoints")
    (data,) = [f for f in os.listdir(folder) if not f.endswith(".json")]
    shutil.move(os.path.join(folder, data), os.path.join(logdir, data))  # the checkpoint's file goes missing
    try:
        page, frame = open_tab(browser_context, url, 3, [0], run="flaky")
        assert wait_grid(frame) == ["error"]
        assert len(cells(frame)[0]["error"]) > 10  # the cell says why
    finally:
        shutil.move(os.path.join(logdir, data), os.path.join(folder, data))  # and comes back
    frame.click("#xai-refresh")
    frame.wait_for_function("document.querySelector('#xai-grid .xai-cell').dataset.state === 'ready'", timeout=WAIT_MS)
    page.close()


def image_bytes(url):
    """(PNG bytes, Cache-Control) of a GET."""
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read(), r.headers.get("Cache-Control", "")


def test_a_sample_set_logged_again_shows_its_new_image_under_its_new_map(server, browser_context):
    url, logdir = server
    page, frame = open_tab(browser_context, url, 1, [0])
    wait_grid(frame)
    images = "async () => [...(await import('./index.js')).current().images.keys()].map(k => new URL(k, document.baseURI).href)"
    (before,) = frame.evaluate(images)
    range_before = cells(frame)[0]["range"]
    frame.evaluate("() => { const s = document.querySelector('#xai-opacity'); s.value = 0; s.dispatchEvent(new Event('input')); }")
    picture_before = frame.evaluate(CANVAS_STATS, "#xai-grid canvas.xai-map")[0]["hash"]
    old_png, cache_control = image_bytes(before)
    assert "v=" in before and "max-age" in cache_control  # versioned, so it may be kept

    log_samples(os.path.join(logdir, "lin"), val_images(seed=2))  # the same name, new images
    for _ in range(60):  # the server re-lists a run's files every 2 s
        frame.click("#xai-refresh")
        page.wait_for_timeout(500)
        if before not in frame.evaluate(images):
            break
    now = [src for src in frame.evaluate(images) if src != before]
    assert now and now[-1].split("v=")[1] != before.split("v=")[1], now
    wait_grid(frame)
    new_png, _ = image_bytes(now[-1])
    assert new_png != old_png
    with open(os.path.join(logdir, "lin", "plugins", "xai", "samples", "val.json")) as f:
        lo, hi = json.load(f)["value_range"]
    scaled = (val_images(seed=2)[0, :, :, 0] - lo) / (hi - lo)
    shown = np.asarray(Image.open(io.BytesIO(new_png)), np.float32) / 255
    assert np.abs(shown - scaled).max() <= 0.5 / 255 + 1e-6  # the new set's first image, to the nearest level
    frame.wait_for_function("(h) => { const c = document.querySelector('#xai-grid canvas.xai-map');"
                            " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                            " let x = 0; for (let i = 0; i < d.length; i += 4) x = (Math.imul(x, 31) + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) | 0;"
                            " return x !== h; }", arg=picture_before)  # the cell draws the new image
    assert cells(frame)[0]["range"] != range_before  # and the map computed on it
    page.close()
