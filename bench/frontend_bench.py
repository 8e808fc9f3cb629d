"""Speed of the XAI tab in Chromium against a real TensorBoard, as ratios against plain work in this run.

  1. 3 models x 4 methods on one sample, server caches warm, fresh page: time from the choice to the
     last map drawn, against the same 12 attribution requests sent by plain fetch() from the page
     (goal: < 1 s);
  2. the suggestion scatter with 50,000 synthetic points: setData (positions + quadtree + draw) and
     a redraw, against a plain canvas loop of 50,000 fillRect calls; a hover hit-test through the
     quadtree against a linear scan (goal: draw < 300 ms);
  3. the bundle's gzipped size (goal: < 300 KB).

    python bench/frontend_bench.py [--repeat 3]
"""

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from tests.browser.conftest import BUNDLE, build_logdir  # noqa: E402
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402
from tests.processes import wait_for_xai  # noqa: E402

APP = "(await import('./index.js')).current()"

# Choose the models and methods through the store, then wait for every cell to leave 'loading'.
GRID_RUN = """async ([models, methods]) => {
  const app = %s;
  const t0 = performance.now();
  app.store.update({models, methods: methods.map((id) => ({id, params: {}})), rows: [0]});
  await new Promise((done) => { const poll = () => {
    const cells = [...document.querySelectorAll('#xai-grid .xai-cell')];
    if (cells.length === models.length * methods.length && cells.every((c) => c.dataset.state !== 'loading')) done();
    else requestAnimationFrame(poll); }; poll(); });
  return {ms: performance.now() - t0, states: [...document.querySelectorAll('#xai-grid .xai-cell')].map((c) => c.dataset.state)};
}""" % APP

# The same requests, one per (model, method) column, by plain fetch() with the body decoded to JSON.
PLAIN_FETCH = """async ([models, methods]) => {
  const t0 = performance.now();
  await Promise.all(models.flatMap((m) => methods.map((id) => fetch('./attributions', {method: 'POST',
    headers: {'Content-Type': 'application/json', 'X-XAI-Request': '1'},
    body: JSON.stringify({models: [m], samples: {run: 'alpha', name: 'val'}, indices: [0], methods: [{id, params: {}}],
                          target: {kind: 'predicted'}, layer: null, neuron: null})}).then((r) => r.json()))));
  return performance.now() - t0;
}"""

SCATTER = """async (n) => {
  const mod = await import('./index.js');
  const rand = (i) => { let h = Math.imul(i + 1, 2654435761); h ^= h >>> 15; return (h >>> 0) / 4294967296; };
  const stats = {count: n, labels: Array.from({length: n}, (_, i) => i % 10), per_model: [],
    per_sample: {mean_top_score: Array.from({length: n}, (_, i) => rand(i)),
                 distinct_classes: Array.from({length: n}, (_, i) => 1 + (i % 4)),
                 majority_right: Array.from({length: n}, (_, i) => rand(i + n) > 0.3)}, activation: null};
  const plot = new mod.ScatterPlot({width: 560, height: 340, onHover: () => {}, onPick: () => {}, onStatus: () => {}});
  document.body.appendChild(plot.el);
  const visible = Array.from({length: n}, (_, i) => i);
  const t0 = performance.now();
  plot.setData(stats, visible);
  const setData = performance.now() - t0;
  const redraw = plot.draw();
  const ctx = plot.canvas.getContext('2d');
  const t1 = performance.now();
  const pts = plot.positions();
  for (const p of pts) { ctx.fillStyle = p.index % 3 ? '#2e7d32' : '#c62828'; ctx.fillRect(p.x - 1.5, p.y - 1.5, 3, 3); }
  const plain = performance.now() - t1;
  const probes = Array.from({length: 200}, (_, k) => [50 + (k * 37) % 500, 20 + (k * 53) % 300]);
  const t2 = performance.now();
  for (const [x, y] of probes) plot.el.querySelector('svg').dispatchEvent(new MouseEvent('mousemove', {clientX: x, clientY: y, bubbles: true}));
  const hover = (performance.now() - t2) / probes.length;
  const t3 = performance.now();
  for (const [x, y] of probes) { let best = -1, bd = 36; for (const p of pts) { const d = (p.x - x) ** 2 + (p.y - y) ** 2; if (d < bd) { bd = d; best = p.index; } } }
  const linear = (performance.now() - t3) / probes.length;
  plot.el.remove();
  return {setData, redraw, plain, hover, linear};
}"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    if not os.path.exists(BUNDLE):
        subprocess.check_call(["npm", "run", "build"], cwd=os.path.join(ROOT, "frontend"))
    with tempfile.TemporaryDirectory() as tmp:
        logdir = build_logdir(os.path.join(tmp, "logs"))
        port = free_port()
        with open(os.path.join(tmp, "tb.log"), "w") as log:
            tb = subprocess.Popen(
                [os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", logdir, "--host", "127.0.0.1",
                 "--port", str(port), "--xai_cache_dir", os.path.join(tmp, "cache")],
                stdout=log, stderr=subprocess.STDOUT,
            )
            try:
                wait_for_xai("http://127.0.0.1:%d" % port, tb)
                run(port, os.path.join(tmp, "profile"), args.repeat, sync_playwright)
            finally:
                tb.terminate()
                tb.wait(timeout=30)
    size = len(gzip.compress(open(BUNDLE, "rb").read(), 9))
    print("bundle: %.1f KB gzipped (%.1f KB raw); goal < 300 KB: %s" % (size / 1024, os.path.getsize(BUNDLE) / 1024, size < 300 * 1024))


def open_tab(context, port):
    """A fresh page on the XAI tab; returns (page, plugin frame) once the grid has drawn."""
    page = context.new_page()
    page.goto("http://127.0.0.1:%d/#xai" % port)
    page.wait_for_function("() => [...document.querySelectorAll('iframe')].some(f => (f.src || '').includes('name=xai'))")
    while not any("name=xai" in f.url for f in page.frames):
        page.wait_for_timeout(50)
    frame = next(f for f in page.frames if "name=xai" in f.url)
    frame.wait_for_selector("#xai-grid .xai-cell:not([data-state=loading])", timeout=300_000)
    return page, frame


def run(port, profile, repeat, sync_playwright):
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page, frame = open_tab(context, port)
        methods = frame.evaluate("[...document.querySelectorAll('input[data-method]')].map(i => i.dataset.method)")[:4]
        models = [{"run": "alpha", "step": 3}, {"run": "beta", "step": 3}, {"run": "alpha", "step": 2}]
        cold = frame.evaluate(GRID_RUN, [models, methods])  # fills the server's caches
        page.close()
        ui, plain = [], []
        for _ in range(repeat):
            page, frame = open_tab(context, port)  # a fresh page: the tab's own cache is empty
            plain.append(frame.evaluate(PLAIN_FETCH, [models, methods]))
            result = frame.evaluate(GRID_RUN, [models, methods])
            ui.append(result["ms"])
            page.close()
        page, frame = open_tab(context, port)
        scatter = [frame.evaluate(SCATTER, 50_000) for _ in range(repeat)]
        context.close()
    med = statistics.median
    print("grid: %d models x %d methods (%s), cold %.0f ms; states %s" % (len(models), len(methods), ", ".join(methods), cold["ms"], result["states"]))
    print("grid, warm server caches: %.0f ms to the last map drawn; plain fetch of the same 12 requests %.0f ms; ratio %.2f; goal < 1000 ms: %s"
          % (med(ui), med(plain), med(ui) / med(plain), med(ui) < 1000))
    s = {k: med([x[k] for x in scatter]) for k in scatter[0]}
    print("scatter, 50,000 points: setData %.1f ms (positions + quadtree + draw), redraw %.1f ms, plain fillRect loop %.1f ms; redraw ratio %.2f; goal < 300 ms: %s"
          % (s["setData"], s["redraw"], s["plain"], s["redraw"] / s["plain"], s["setData"] < 300))
    print("hover hit-test: quadtree %.3f ms per move, linear scan %.3f ms; ratio %.3f" % (s["hover"], s["linear"], s["hover"] / s["linear"]))
    print(json.dumps({"grid_ms": med(ui), "plain_fetch_ms": med(plain), "scatter": s}))


if __name__ == "__main__":
    main()
