"""Check the demo's XAI tab in a real browser: every run listed, two models' maps drawn with predictions.

    python demo/check_page.py --url http://localhost:6006        # `make demo-check`, beside `make demo`

It opens <url>/#xai in headless Chromium (Playwright), waits for the tab, checks that the model
picker lists every demo run, chooses the biased run and one other with the gradient method only,
and checks that every grid cell draws its map over the sample (canvas pixels) and shows the
model's top predictions. It prints what it saw; on a failure it prints why and exits with 1.
"""

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout, for `demo`
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # demo.train's RUNS come with TensorFlow: keep its start-up log quiet

from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from playwright.sync_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from demo.train import RUNS  # noqa: E402
from tb_xai_plugin.errors import XaiError  # noqa: E402

BIASED_RUN = "cnn-biased"
OTHER_RUN = "cnn"
METHOD = "gradient"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 1100}
MIN_COLOURS = 8  # a drawn map or photo has many colours; a blank or one-colour canvas has one or two

LISTED_RUNS = "[...document.querySelectorAll('.xai-run-check')].map(c => c.dataset.run)"
# True once the grid's columns are exactly `runs` x `method` and no cell is computing.
GRID_DONE = """([runs, method]) => { const c = [...document.querySelectorAll('#xai-grid .xai-cell')];
  const keys = c.map(x => JSON.parse(x.dataset.key));
  return c.length > 0 && keys.every(k => runs.includes(k[1]) && k[3] === method)
    && runs.every(r => keys.some(k => k[1] === r)) && c.every(x => x.dataset.state !== 'loading'); }"""
RUN_BOXES = ".xai-run-check"
METHOD_BOXES = "#xai-setup input[type=checkbox][data-method]"
CHECKED = "([sel, kind]) => [...document.querySelectorAll(sel)].filter(c => c.checked).map(c => c.dataset[kind])"
# Grid cells as {key: [sample, run, step, method], state, message, predictions: [[class, score]], mark}.
CELLS = """() => [...document.querySelectorAll('#xai-grid .xai-cell')].map(c => ({
  key: JSON.parse(c.dataset.key), state: c.dataset.state,
  message: (c.querySelector('.xai-error, .xai-loading') || {}).textContent || '',
  predictions: [...c.querySelectorAll('.xai-preds li')].filter(li => li.children.length === 2 && !li.querySelector('.xai-mark'))
    .map(li => [li.children[0].textContent, +li.children[1].textContent]),
  mark: (c.querySelector('.xai-mark') || {}).textContent || ''}))"""
# Per grid canvas: cell key, size, opaque pixels, distinct colours, a checksum of the pixels.
CANVASES = """() => [...document.querySelectorAll('#xai-grid canvas.xai-map')].map(c => {
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let opaque = 0, hash = 0; const colours = new Set();
  for (let i = 0; i < d.length; i += 4) {
    if (d[i + 3] > 0) opaque++;
    colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
    hash = (Math.imul(hash, 31) + d[i] + 7 * d[i + 1] + 13 * d[i + 2]) | 0;
  }
  return {key: c.closest('.xai-cell').dataset.key, pixels: c.width * c.height, opaque, colours: colours.size, hash};
})"""
SET_OPACITY = "(v) => { const s = document.querySelector('#xai-opacity'); s.value = v; s.dispatchEvent(new Event('input')); }"
ROW_LABELS = "[...document.querySelectorAll('#xai-grid .xai-rowhead')].map(r => r.firstChild.textContent)"


def parse_args(argv):
    """The command line: the TensorBoard to check, the runs it must list, and the two to compare."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="TensorBoard's address, e.g. http://localhost:6006")
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated runs the model picker must list")
    parser.add_argument("--biased", default=BIASED_RUN, help="the biased run, compared with --other")
    parser.add_argument("--other", default=OTHER_RUN, help="the run shown beside --biased")
    parser.add_argument("--method", default=METHOD, help="the attribution method to draw")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the tab, the runs and the maps")
    parser.add_argument("--screenshot", help="save a PNG of the tab with the maps drawn here")
    parser.add_argument("--chromium", default=CHROMIUM, help="the Chromium binary Playwright drives")
    args = parser.parse_args(argv)
    args.runs = [name.strip() for name in args.runs.split(",") if name.strip()]
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    return args


def tab_frame(page):
    """The XAI tab's iframe (TensorBoard's plugin_entry.html?name=xai) in `page`, or None."""
    return next((f for f in page.frames if "plugin_entry.html" in f.url and "name=xai" in f.url), None)


def open_tab(page, url, timeout_s):
    """Go to <url>/#xai and return the XAI tab's iframe once its method list is drawn."""
    page.goto(url.rstrip("/") + "/#xai", timeout=timeout_s * 1000)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        frame = tab_frame(page)
        if frame is not None:
            frame.wait_for_selector("#xai-setup input[data-method]", timeout=max(deadline - time.time(), 1) * 1000)
            return frame
        page.wait_for_timeout(200)
    raise XaiError("%s shows no XAI tab within %.0f s (is the tb-xai plugin installed in this TensorBoard?)" % (url, timeout_s))


def listed_runs(page, url, expected, timeout_s):
    """(The tab's iframe, the runs its model picker lists), reloading until every expected run is there."""
    deadline = time.time() + timeout_s
    frame = open_tab(page, url, timeout_s)
    while True:
        runs = frame.evaluate(LISTED_RUNS)
        missing = [run for run in expected if run not in runs]
        if not missing:
            return frame, runs
        if time.time() > deadline:
            raise XaiError("the model picker lacks run(s) %s; it lists: %s" % (", ".join(missing), ", ".join(runs) or "nothing"))
        page.wait_for_timeout(2000)  # TensorBoard may still be reading the logdir: look again
        page.reload()
        frame = open_tab(page, url, max(deadline - time.time(), 5))


def check_only(frame, kind, wanted):
    """Click the tab's `kind` ("run" or "method") checkboxes until exactly those named in `wanted` are checked."""
    selector = RUN_BOXES if kind == "run" else METHOD_BOXES
    for _ in range(50):
        checked = frame.evaluate(CHECKED, [selector, kind])
        wrong = [name for name in checked if name not in wanted] + [name for name in wanted if name not in checked]
        if not wrong:
            return
        box = frame.locator('%s[data-%s="%s"]' % (selector, kind, wrong[0]))
        if box.count() == 0:
            raise XaiError("the tab offers no %s %r" % (kind, wrong[0]))
        box.click()  # each click redraws the setup bar: look up the boxes again
    raise XaiError("could not choose the %ss %s: the checkboxes do not keep their state" % (kind, ", ".join(wanted)))


def wait_grid(frame, runs, method, timeout_s):
    """The grid's cells once it shows exactly `runs` x `method` and none is computing; XaiError otherwise."""
    try:
        frame.wait_for_function(GRID_DONE, arg=[list(runs), method], timeout=timeout_s * 1000)
    except PlaywrightTimeout as e:
        cells = frame.evaluate(CELLS)
        seen = ["%s/%s: %s %s" % (c["key"][1], c["key"][3], c["state"], c["message"]) for c in cells]
        raise XaiError("the grid did not finish %s x %s within %.0f s (%s); it shows: %s"
                       % (", ".join(runs), method, timeout_s, type(e).__name__, "; ".join(seen) or "no cells")) from e
    return frame.evaluate(CELLS)


def drawn_maps(frame):
    """{(sample, run, step, method): canvas stats} with the map fully shown; XaiError for a blank map or a bare sample."""
    frame.evaluate(SET_OPACITY, "0")
    bare = {c["key"]: c for c in frame.evaluate(CANVASES)}
    frame.evaluate(SET_OPACITY, "1")
    shown = {c["key"]: c for c in frame.evaluate(CANVASES)}
    frame.evaluate(SET_OPACITY, "0.6")
    for key, canvas in shown.items():
        run = json.loads(key)[1]
        if canvas["pixels"] == 0 or canvas["opaque"] < canvas["pixels"] or canvas["colours"] < MIN_COLOURS:
            raise XaiError("%s's map is blank: %d of %d pixels drawn, %d colours" % (run, canvas["opaque"], canvas["pixels"], canvas["colours"]))
        if canvas["hash"] == bare[key]["hash"]:
            raise XaiError("%s's cell shows the sample without its map" % run)
    return {tuple(json.loads(key)): canvas for key, canvas in shown.items()}


def check_cells(cells):
    """XaiError unless every cell is ready and lists at least three predictions with scores in [0, 1]."""
    for cell in cells:
        run = cell["key"][1]
        if cell["state"] != "ready":
            raise XaiError("%s's cell failed: %s" % (run, cell["message"] or cell["state"]))
        predictions = cell["predictions"]
        if len(predictions) < 3 or not all(name and 0.0 <= score <= 1.0 for name, score in predictions):
            raise XaiError("%s's cell shows no top-3 predictions: %s" % (run, predictions))


def check(page, url, runs=tuple(RUNS), biased=BIASED_RUN, other=OTHER_RUN, method=METHOD, timeout_s=300.0):
    """Drive the XAI tab at `url` in a Playwright `page`; return what it saw, or raise XaiError saying what is wrong."""
    if biased == other:
        raise XaiError("--biased and --other name the same run %r" % biased)
    frame, listed = listed_runs(page, url, list(dict.fromkeys([*runs, biased, other])), timeout_s)
    methods = frame.evaluate("[...document.querySelectorAll('#xai-setup input[data-method]')].map(i => i.dataset.method)")
    if method not in methods:
        raise XaiError("the tab offers no method %r; it offers: %s" % (method, ", ".join(methods)))
    check_only(frame, "run", [biased, other])
    check_only(frame, "method", [method])
    cells = wait_grid(frame, [biased, other], method, timeout_s)
    check_cells(cells)
    canvases = drawn_maps(frame)
    return {
        "runs": listed,
        "methods": len(methods),
        "samples": frame.evaluate(ROW_LABELS),
        "cells": [dict(cell, canvas=canvases[tuple(cell["key"])]) for cell in cells],
    }


def save_screenshot(page, path):
    """A PNG of the page from the top down to the end of the tab's comparison grid."""
    page.wait_for_timeout(300)  # the redraw at the usual opacity
    box = tab_frame(page).locator("#xai-compare").bounding_box()
    page.screenshot(path=path, clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": min(box["y"] + box["height"] + 8, VIEWPORT["height"])})


def describe(report):
    """The report as lines of text: runs listed, then per cell its model, map and predictions."""
    lines = ["model picker lists %d runs: %s" % (len(report["runs"]), ", ".join(report["runs"])),
             "methods offered: %d; sample(s) shown: %s" % (report["methods"], ", ".join(report["samples"]))]
    for cell in report["cells"]:
        sample, run, step, method = cell["key"]
        top = ", ".join("%s %.3f" % (name, score) for name, score in cell["predictions"][:3])
        lines.append("  %s @ step %s, %s, sample #%s: map drawn (%d colours); predicts %s %s"
                     % (run, step, method, sample, cell["canvas"]["colours"], top, cell["mark"]))
    return lines


def main(argv=None):
    """Check the page at --url in headless Chromium; print what it saw; 0 when all is there, 1 otherwise."""
    args = parse_args(argv)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport=VIEWPORT)
                report = check(page, args.url, args.runs, args.biased, args.other, args.method, args.timeout)
                if args.screenshot:
                    save_screenshot(page, args.screenshot)
            finally:
                browser.close()
    except XaiError as e:
        print("demo-check FAILED: %s" % e, file=sys.stderr)
        return 1
    except PlaywrightError as e:
        print("demo-check FAILED: the browser could not check %s: %s" % (args.url, str(e).splitlines()[0]), file=sys.stderr)
        return 1
    print("\n".join(describe(report)))
    if args.screenshot:
        print("screenshot: %s" % args.screenshot)
    print("demo-check OK: %d runs listed; %s and %s drew %s maps with predictions" % (len(args.runs), args.biased, args.other, args.method))
    return 0


if __name__ == "__main__":
    sys.exit(main())
