"""The XAI tab in Chromium against a real TensorBoard: grid, navigation, target, hover, over-training
slider, exports, suggestion scatter and histogram. The tests run in file order on one page, each
leaving the state the next one starts from."""

import json
import os
import urllib.parse

import numpy as np
import pytest
from PIL import Image

from tests.browser.conftest import SCREENSHOTS

WAIT_MS = 180_000
PREFERRED_METHODS = ("gradient", "grad_cam", "occlusion", "lrp.epsilon", "activation")

# Pixel statistics of every canvas matching a selector: opaque pixels, distinct colours, a checksum.
CANVAS_STATS = """(sel) => [...document.querySelectorAll(sel)].map((c) => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let opaque = 0, hash = 0; const colors = new Set();
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0) opaque++;
    colors.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    hash = (Math.imul(hash, 31) + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) | 0;
  }
  return {opaque, colors: colors.size, hash, key: c.closest('.xai-cell').dataset.key};
})"""

MODULE = "(await import('./index.js')).current()"


@pytest.fixture(scope="module")
def tab(tensorboard, browser_context):
    """The XAI tab open in TensorBoard; yields (page, plugin frame, console errors seen)."""
    page = browser_context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append("page error: %s" % e))
    page.on("response", lambda r: errors.append("%s %s: %s" % (r.status, r.url, r.text()[:300])) if r.status >= 400 else None)
    page.goto(tensorboard + "/#xai")
    page.wait_for_selector("iframe")
    frame = wait_for_frame(page)
    frame.wait_for_selector("#xai-setup input[data-method]", timeout=WAIT_MS)
    yield page, frame, errors
    page.close()


def wait_for_frame(page):
    """The plugin's iframe (TensorBoard's plugin_entry.html?name=xai)."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('iframe')].some(f => (f.src || '').includes('name=xai'))", timeout=WAIT_MS
    )
    for _ in range(200):
        for frame in page.frames:
            if "plugin_entry.html" in frame.url and "name=xai" in frame.url:
                return frame
        page.wait_for_timeout(100)
    raise AssertionError("no xai iframe")


def wait_grid(frame, grid="#xai-grid"):
    """Wait until every cell of a grid has left the loading state; return their states."""
    frame.wait_for_function(
        "(g) => { const c = [...document.querySelectorAll(g + ' .xai-cell')];"
        " return c.length > 0 && c.every(x => x.dataset.state !== 'loading'); }",
        arg=grid,
        timeout=WAIT_MS,
    )
    return frame.evaluate("(g) => [...document.querySelectorAll(g + ' .xai-cell')].map(c => c.dataset.state)", grid)


def state_in_url(page):
    """The tab's state as the top window's URL carries it."""
    hash_ = page.evaluate("location.hash")
    part = [p for p in hash_.lstrip("#").split("&") if p.startswith("xai=")]
    assert part, "no xai state in %r" % hash_
    return json.loads(urllib.parse.unquote(part[0][4:]))


def grid_rows(frame, grid="#xai-grid"):
    return frame.evaluate("(g) => [...document.querySelectorAll(g + ' tbody tr')].map(r => +r.dataset.index)", grid)


def set_opacity(frame, value):
    frame.evaluate(
        "(v) => { const s = document.querySelector('#xai-opacity'); s.value = v; s.dispatchEvent(new Event('input')); }",
        str(value),
    )


def chosen_methods(frame):
    """Check three methods (preferred ones first), uncheck the rest; return their ids."""
    available = frame.evaluate("[...document.querySelectorAll('input[data-method][type=checkbox]')].map(i => i.dataset.method)")
    wanted = [m for m in PREFERRED_METHODS if m in available]
    wanted += [m for m in available if m not in wanted]
    wanted = wanted[:3]
    assert len(wanted) == 3, "fewer than three methods registered: %s" % available
    for method in available:
        box = frame.locator('input[type=checkbox][data-method="%s"]' % method)
        if box.is_checked() != (method in wanted):
            box.click()
    return wanted


def test_grid_fills_for_two_runs_and_three_methods(tab):
    page, frame, _ = tab
    for run in ("alpha", "beta"):
        if not frame.locator('.xai-run-check[data-run="%s"]' % run).is_checked():
            frame.locator('.xai-run-check[data-run="%s"]' % run).click()
    methods = chosen_methods(frame)
    states = wait_grid(frame)
    ask = """async (run) => (await (await fetch("applicability", {method: "POST", headers: {"X-XAI-Request": "1",
        "Content-Type": "application/json"}, body: JSON.stringify({run, step: 3})})).json()).methods"""
    applies = [frame.evaluate(ask, run) for run in ("alpha", "beta")]  # a worker's check of each loaded model
    assert all(a[m]["ok"] for a in applies for m in methods), applies  # every chosen method applies to both models
    assert states == ["ready"] * (2 * 3), states
    state = state_in_url(page)
    assert sorted(map(tuple, state["m"])) == [("alpha", 3), ("beta", 3)]
    assert sorted(a[0] for a in state["a"]) == sorted(methods)

    set_opacity(frame, 0)
    bare = {s["key"]: s for s in frame.evaluate(CANVAS_STATS, "#xai-grid .xai-cell[data-state=ready] canvas.xai-map")}
    set_opacity(frame, 1)
    shown = frame.evaluate(CANVAS_STATS, "#xai-grid .xai-cell[data-state=ready] canvas.xai-map")
    for s in shown:
        assert s["opaque"] == 128 * 128 and s["colors"] > 8, s  # a drawn picture, not a blank canvas
        assert s["hash"] != bare[s["key"]]["hash"], "the map is not drawn over the image: %s" % s["key"]
    set_opacity(frame, 0.6)

    predictions = frame.evaluate("[...document.querySelectorAll('#xai-grid .xai-cell')].map(c => c.querySelectorAll('.xai-preds li').length)")
    assert all(n >= 3 for n in predictions), predictions  # top-3 and the right/wrong mark
    marks = frame.evaluate("[...document.querySelectorAll('#xai-grid .xai-mark')].map(m => m.textContent)")
    assert marks and all(("right" in m) or ("wrong" in m) for m in marks)
    frame.locator("#xai-compare").screenshot(path=os.path.join(SCREENSHOTS, "grid.png"))


def test_hparams_filter_narrows_the_run_list(tab):
    page, frame, _ = tab
    runs = "[...document.querySelectorAll('.xai-run-check')].map(c => c.dataset.run).join()"
    assert frame.evaluate(runs) == "alpha,beta"
    frame.select_option('select[data-hparam="seed"]', "2")
    frame.wait_for_function(runs + " === 'beta'")
    assert state_in_url(page)["hp"] == {"seed": "2"}
    frame.select_option('select[data-hparam="seed"]', "")
    frame.wait_for_function(runs + " === 'alpha,beta'")


def test_next_sample_moves_every_panel(tab):
    page, frame, _ = tab
    before = {s["key"]: s["hash"] for s in frame.evaluate(CANVAS_STATS, "#xai-grid canvas.xai-map")}
    frame.locator("#xai-next").click()
    wait_grid(frame)
    assert grid_rows(frame) == [1]
    frame.locator("body").press("ArrowRight")
    wait_grid(frame)
    assert grid_rows(frame) == [2]
    frame.locator("body").press("ArrowLeft")
    wait_grid(frame)
    assert grid_rows(frame) == [1]
    assert state_in_url(page)["r"] == [1]
    after = frame.evaluate(CANVAS_STATS, "#xai-grid canvas.xai-map")
    assert all(json.loads(s["key"])[0] == 1 for s in after)
    assert {s["hash"] for s in after}.isdisjoint(before.values())


def test_hover_shows_the_value_in_every_panel(tab):
    _, frame, _ = tab
    frame.locator("#xai-grid canvas.xai-map").first.hover(position={"x": 64, "y": 64})
    readouts = frame.evaluate("[...document.querySelectorAll('#xai-grid .xai-cell[data-state=ready] .xai-readout')].map(r => r.textContent)")
    where = {r.split(":")[0] for r in readouts}
    assert len(readouts) == 6 and len(where) == 1, readouts  # the same pixel in every panel
    x, y = map(int, where.pop().strip("()").split(","))
    assert abs(x - 14) <= 1 and abs(y - 14) <= 1
    slider = frame.locator("#xai-opacity").bounding_box()
    page = tab[0]
    page.mouse.move(slider["x"] + 2, slider["y"] + slider["height"] / 2)
    page.mouse.down()
    page.mouse.move(slider["x"] + slider["width"] - 1, slider["y"] + slider["height"] / 2, steps=10)
    page.mouse.up()
    assert state_in_url(page)["o"] == 1  # a drag goes all the way: the slider is not rebuilt under the pointer
    set_opacity(frame, 0.6)
    frame.select_option("#xai-zoom", "2")
    sizes = frame.evaluate("[...document.querySelectorAll('#xai-grid canvas.xai-map')].map(c => c.getBoundingClientRect().width)")
    assert sizes and all(abs(w - 256) < 1 for w in sizes), sizes
    frame.select_option("#xai-zoom", "1")


def test_changing_the_target_recomputes_for_that_class(tab):
    page, frame, _ = tab
    frame.select_option("#xai-target", "class")
    frame.fill("#xai-class", "2: cross")
    frame.locator("#xai-class").dispatch_event("change")
    wait_grid(frame)
    assert state_in_url(page)["t"] == 2
    explains = frame.evaluate("[...document.querySelectorAll('#xai-grid .xai-cell[data-state=ready] .xai-loading')].map(e => e.textContent)")
    assert explains and all(e.startswith("explains cross") for e in explains), explains
    frame.select_option("#xai-target", "predicted")
    wait_grid(frame)


def test_a_failing_cell_shows_its_error_and_the_rest_works(tab):
    _, frame, _ = tab
    layer_methods = frame.evaluate("[...document.querySelectorAll('#xai-layer option')].map(o => o.value)")
    if "dense" not in layer_methods:
        pytest.fail("no layer picker: none of the chosen methods takes a layer")
    frame.select_option("#xai-layer", "dense")
    states = wait_grid(frame)
    errors = frame.evaluate("[...document.querySelectorAll('#xai-grid .xai-cell[data-state=error] .xai-error')].map(e => e.textContent)")
    assert "error" in states and "ready" in states, states
    assert all(len(e) > 10 for e in errors), errors
    frame.select_option("#xai-layer", "conv2")
    assert "error" not in wait_grid(frame)


def test_over_training_slider_changes_the_map(tab):
    page, frame, _ = tab
    wait_grid(frame, "#xai-timeline-grid")
    at_last = {s["key"]: s["hash"] for s in frame.evaluate(CANVAS_STATS, "#xai-timeline-grid canvas.xai-map")}
    frame.evaluate(
        "() => { const s = document.querySelector('#xai-timeline-slider'); s.value = 0; s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change')); }"
    )
    frame.wait_for_function("document.querySelector('#xai-timeline-step').textContent.startsWith('step 1 ')")
    wait_grid(frame, "#xai-timeline-grid")
    at_first = frame.evaluate(CANVAS_STATS, "#xai-timeline-grid canvas.xai-map")
    assert all(json.loads(s["key"])[2] == 1 for s in at_first)
    assert any(s["hash"] not in at_last.values() for s in at_first)
    assert state_in_url(page)["ts"] == 1
    strip = wait_grid(frame, "#xai-timeline-strip")
    assert len(strip) == 3  # every checkpoint of the run: steps 1, 2, 3
    pictures = frame.evaluate(CANVAS_STATS, "#xai-timeline-strip canvas.xai-map")
    assert [json.loads(p["key"])[2] for p in pictures] == [1, 2, 3]
    assert len({p["hash"] for p in pictures}) == 3  # the map changed while the model learned

    domains = "[...document.querySelectorAll('#xai-timeline-strip .xai-cell')].map(c => c.dataset.domain)"
    assert len(set(frame.evaluate(domains))) == 3  # each map over its own range
    frame.select_option("#xai-scale", "method")
    frame.wait_for_function("new Set(%s).size === 1" % domains)
    shared = frame.evaluate(domains)[0].split(",")
    in_grid = frame.evaluate("[...document.querySelectorAll('#xai-grid .xai-cell[data-state=ready]')].map(c => [JSON.parse(c.dataset.key)[3], c.dataset.domain])")
    for method in {m for m, _ in in_grid}:
        assert len({d for m, d in in_grid if m == method}) == 1, in_grid  # one range per method
    assert float(shared[0]) <= float(shared[1])
    assert state_in_url(page)["sc"] == "method"
    frame.select_option("#xai-scale", "own")
    frame.wait_for_function("new Set(%s).size === 3" % domains)
    frame.locator("#xai-timeline").screenshot(path=os.path.join(SCREENSHOTS, "over_training.png"))


def test_exports_png_npz_and_csv(tab, tmp_path):
    page, frame, _ = tab
    wait_grid(frame)
    with page.expect_download() as d:
        frame.click("#xai-export-png")
    png = Image.open(d.value.path())
    assert png.format == "PNG" and png.width > 6 * 128
    with page.expect_download() as d:
        frame.click("#xai-export-npz")
    ready = frame.evaluate("[...document.querySelectorAll('#xai-grid .xai-cell[data-state=ready]')].length")
    with np.load(d.value.path()) as npz:
        maps = [k for k in npz.files if k != "indices"]
        assert npz["indices"].tolist() == [1.0]
        assert len(maps) == ready
        for k in maps:
            assert npz[k].shape == (1, 28, 28) and npz[k].dtype == np.float32 and np.isfinite(npz[k]).all()
            assert np.ptp(npz[k]) > 0, k
    with page.expect_download() as d:
        frame.locator("#xai-grid .xai-cell[data-state=ready] .xai-cell-npy").first.click()
    one = np.load(d.value.path())
    assert d.value.suggested_filename.endswith("_1.npy") and one.shape == (28, 28) and one.dtype == np.float32
    with page.expect_download() as d:
        frame.click("#xai-export-csv")
    lines = open(d.value.path()).read().strip().splitlines()
    assert lines[0] == "index,label,run,step,rank,class,class_name,score"
    assert len(lines) == 1 + 2 * 3  # two models, top 3


def test_progress_bar_and_cancel_of_a_long_computation(tab):
    page, frame, errors = tab
    before = frame.evaluate("async () => { const s = %s.store.get(); return {methods: s.methods, rows: s.rows}; }" % MODULE)
    slow = [{"id": "occlusion", "params": {"window": 1, "stride": 1}}, {"id": "integrated_gradients", "params": {"steps": 1024}}]
    frame.evaluate("async (m) => %s.store.update({methods: m, rows: [...Array(24).keys()]})" % MODULE, slow)
    frame.wait_for_selector("#xai-progress[data-busy=true]", timeout=30_000)
    assert frame.locator("#xai-cancel").is_visible()
    assert "computing" in frame.locator("#xai-progress").inner_text()
    frame.click("#xai-cancel")
    frame.wait_for_selector("#xai-progress[data-busy=false]", timeout=WAIT_MS)
    states = wait_grid(frame)
    texts = frame.evaluate("[...document.querySelectorAll('#xai-grid .xai-cell[data-state=error] .xai-error')].map(e => e.textContent)")
    assert "error" in states and all(t.startswith("Cancelled") for t in texts), texts
    assert "Cancelled" in frame.locator("#xai-progress").inner_text()
    # the server's 409 answers to the cancelled requests are expected; nothing else may fail
    errors[:] = [e for e in errors if "409" not in e]
    frame.evaluate("async (s) => %s.store.update(s)" % MODULE, before)
    assert "error" not in wait_grid(frame)


def test_scatter_hover_click_and_brush(tab):
    page, frame, _ = tab
    frame.wait_for_selector("#xai-scatter", timeout=WAIT_MS)
    points = frame.evaluate("async () => %s.suggestions.plot.positions()" % MODULE)
    assert len(points) == 24
    svg = frame.locator("#xai-scatter svg")
    target = [p for p in points if p["index"] not in (0, 1)][0]  # a sample not in the grid yet
    svg.hover(position={"x": target["x"], "y": target["y"]})
    frame.wait_for_selector("#xai-tooltip:not(.xai-hidden) img", timeout=10_000)
    tip = frame.locator("#xai-tooltip").inner_text()
    assert "#%d" % target["index"] in tip and "alpha@3" in tip and "beta@3" in tip
    frame.wait_for_function("document.querySelector('#xai-tooltip img').naturalWidth > 0")

    svg.click(position={"x": target["x"], "y": target["y"]})
    frame.wait_for_function("(i) => [...document.querySelectorAll('#xai-grid tbody tr')].some(r => +r.dataset.index === i)", arg=target["index"])
    assert grid_rows(frame) == [1, target["index"]]
    wait_grid(frame)
    frame.locator("#xai-suggestions").screenshot(path=os.path.join(SCREENSHOTS, "suggestions.png"))

    box = svg.bounding_box()
    xs = sorted(p["x"] for p in points)
    x0, x1 = xs[len(xs) // 2] - 0.5, max(xs) + 2
    inside = sorted(p["index"] for p in points if x0 <= p["x"] <= x1)
    page.mouse.move(box["x"] + x0, box["y"] + 13)
    page.mouse.down()
    page.mouse.move(box["x"] + x1, box["y"] + box["height"] - 35, steps=8)
    page.mouse.up()
    frame.wait_for_function("(n) => document.querySelectorAll('#xai-grid tbody tr').length === n", arg=min(16, len(inside)))
    assert grid_rows(frame) == inside[:16]
    assert "%d selected" % len(inside) in frame.locator("#xai-selection").inner_text()
    with page.expect_download() as d:
        frame.click("#xai-selection-csv")
    lines = open(d.value.path()).read().strip().splitlines()
    assert len(lines) == 1 + len(inside) and [int(l.split(",")[0]) for l in lines[1:]] == inside
    wait_grid(frame)


def test_one_model_gives_a_histogram_and_a_bar_sends_its_samples(tab):
    page, frame, _ = tab
    frame.locator('.xai-run-check[data-run="beta"]').click()
    frame.wait_for_selector("#xai-histogram", timeout=WAIT_MS)
    bars = frame.evaluate("async () => %s.suggestions.plot.bars()" % MODULE)
    assert sum(len(b["indices"]) for b in bars) == 24
    bar = max(bars, key=lambda b: len(b["indices"]))
    frame.locator("#xai-histogram svg").click(position={"x": bar["x"], "y": bar["y"]})
    frame.wait_for_function("(n) => document.querySelectorAll('#xai-grid tbody tr').length === n", arg=min(16, len(bar["indices"])))
    assert grid_rows(frame) == sorted(bar["indices"])[:16]
    frame.check("#xai-f-mis")
    frame.wait_for_function("document.querySelector('#xai-shown').textContent.split(' ')[0] !== '24'")
    shown = int(frame.locator("#xai-shown").inner_text().split()[0])
    bars = frame.evaluate("async () => %s.suggestions.plot.bars()" % MODULE)
    assert sum(len(b["indices"]) for b in bars) == shown
    frame.locator("#xai-suggestions").screenshot(path=os.path.join(SCREENSHOTS, "histogram.png"))
    frame.uncheck("#xai-f-mis")
    frame.wait_for_function("document.querySelector('#xai-shown').textContent.startsWith('24 ')")
    frame.select_option("#xai-hist-source", "activation")
    frame.wait_for_function("[...document.querySelectorAll('#xai-histogram text')].some(t => t.textContent.startsWith('mean activation of conv2'))", timeout=WAIT_MS)
    bars = frame.evaluate("async () => %s.suggestions.plot.bars()" % MODULE)
    assert sum(len(b["indices"]) for b in bars) == 24
    # brushing a range: the samples of every bar it touches, in index order
    box = frame.locator("#xai-histogram svg").bounding_box()
    x0, x1 = bars[0]["x"] - 6, bars[-1]["x"] + 6
    page.mouse.move(box["x"] + min(x0, 46), box["y"] + 100)
    page.mouse.down()
    page.mouse.move(box["x"] + max(x1, 546), box["y"] + 120, steps=8)
    page.mouse.up()
    frame.wait_for_function("document.querySelectorAll('#xai-grid tbody tr').length === 16")
    assert grid_rows(frame) == list(range(16))


def test_state_survives_a_reload(tab):
    page, frame, _ = tab
    frame.locator('.xai-run-check[data-run="beta"]').click()
    frame.wait_for_selector("#xai-scatter", timeout=WAIT_MS)
    wait_grid(frame)
    state = state_in_url(page)
    page.reload()
    frame = wait_for_frame(page)
    frame.wait_for_selector("#xai-grid", timeout=WAIT_MS)
    wait_grid(frame)
    assert state_in_url(page) == state
    assert grid_rows(frame) == state["r"]
    checked = frame.evaluate("[...document.querySelectorAll('input[data-method]:checked')].map(i => i.dataset.method)")
    assert sorted(checked) == sorted(a[0] for a in state["a"])
    frame.wait_for_selector("#xai-scatter", timeout=WAIT_MS)
    frame.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=os.path.join(SCREENSHOTS, "tab.png"))


def test_a_stale_or_hostile_url_falls_back_to_what_exists(tab, tensorboard):
    _, _, errors = tab
    page = tab[0].context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append("page error: %s" % e))
    state = {"s": ["ghost", "../../etc"], "m": [["ghost", 9], ["alpha", 99], ["beta", 2]], "a": [["nope", {}], "x"],
             "t": "<img src=x onerror=alert(1)>", "r": [-3, 10**9], "o": 5, "z": "big", "f": "?"}
    page.goto(tensorboard + "/#xai&xai=" + urllib.parse.quote(json.dumps(state)))
    frame = wait_for_frame(page)
    frame.wait_for_selector("#xai-grid", timeout=WAIT_MS)
    wait_grid(frame)
    now = state_in_url(page)
    assert now["m"] == [["beta", 2]]  # unknown runs and steps dropped
    assert now["s"] == ["alpha", "val"] and now["t"] == "predicted" and now["r"] == [0]
    assert len(now["a"]) == 1 and now["a"][0][0] != "nope"  # the first registered method
    assert frame.evaluate("document.querySelectorAll('img[src=x]').length") == 0
    page.close()


def test_no_console_errors(tab):
    _, _, errors = tab
    assert errors == []
