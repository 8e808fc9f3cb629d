"""The XAI tab behaves like the rest of TensorBoard: its light / dark theme, its run colours, its regex
run filter, keyboard use of the grid, the maps and the suggestion plot, accessible names, and axe-core's
check in both themes. Chromium against a real TensorBoard; the tests run in file order on one page.

The logdir: six scalar-only runs written first ("_early0".."_early5"), then the two XAI runs of
conftest.build_logdir. TensorBoard orders runs by first event time (whole seconds), then name, so
alpha is its 7th run and beta its 8th: alpha takes palette colour 6 (orange) and beta wraps to colour 0 (slate, which differs between
light and dark), unlike any order the tab could make up from its own two runs.
"""

import json
import os

import pytest

from tests.browser.conftest import REPO, SCREENSHOTS, build_logdir, serve_tensorboard
from tests.browser.test_xai_tab import WAIT_MS, grid_rows, wait_for_frame, wait_grid

AXE = os.path.join(REPO, "frontend", "node_modules", "axe-core", "axe.min.js")
EARLY_RUNS = ["_early%d" % k for k in range(6)]  # "_" sorts before "alpha" when the second ties
# TensorBoard's default palette at colour 6 (orange) and 0 (slate): light, dark.
EXPECTED = {"alpha": ("#e8710a", "#e8710a"), "beta": ("#425066", "#8e98a3")}
THEME_MENU = "button[aria-label='Menu for changing light or dark theme']"

# Every element of the tab whose own background is opaque and light (relative luminance > 0.6).
LIGHT_BACKGROUNDS = """() => {
  const lum = (c) => { const m = c.match(/[\\d.]+/g); if (!m) return 0; const [r, g, b, a] = m.map(Number);
    if (a !== undefined && a < 0.5) return 0;
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  return [document.documentElement, ...document.querySelectorAll('body, body *')]
    .filter((el) => el.getClientRects().length && !el.classList.contains('xai-swatch'))
    .map((el) => [el.tagName + (el.id ? '#' + el.id : '') + '.' + el.className, getComputedStyle(el).backgroundColor])
    .filter(([, bg]) => lum(bg) > 0.6);
}"""

SWATCHES = "() => Object.fromEntries([...document.querySelectorAll('#xai-setup .xai-swatch[data-run]')].map(s => [s.dataset.run, getComputedStyle(s).backgroundColor]))"


def hex_to_rgb(value):
    """'#e8710a' -> 'rgb(232, 113, 10)', as getComputedStyle writes it."""
    return "rgb(%d, %d, %d)" % tuple(int(value[i : i + 2], 16) for i in (1, 3, 5))


@pytest.fixture(scope="module")
def tb_url(tmp_path_factory, bundle):
    """A TensorBoard over the six early scalar runs, then alpha and beta with checkpoints and samples."""
    import tensorflow as tf

    root = str(tmp_path_factory.mktemp("logdir-like-tb"))
    for k, run in enumerate(EARLY_RUNS):
        writer = tf.summary.create_file_writer(os.path.join(root, run))
        with writer.as_default():
            tf.summary.scalar("loss", 1.0 / (k + 1), step=0)
        writer.close()
    build_logdir(root)
    with serve_tensorboard(root, str(tmp_path_factory.mktemp("xai-cache-like-tb"))) as url:
        yield url


@pytest.fixture(scope="module")
def tab(tb_url, browser_context):
    """The XAI tab in light mode (the browser prefers light); yields (page, frame, errors)."""
    page = browser_context.new_page()
    page.emulate_media(color_scheme="light")
    errors = []
    page.on("pageerror", lambda e: errors.append("page error: %s" % e))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(tb_url + "/#xai")
    frame = open_frame(page)
    yield page, frame, errors
    page.close()


def open_frame(page):
    """The XAI iframe once its grid (two models, one method) and its scatter are drawn."""
    frame = wait_for_frame(page)
    frame.wait_for_selector("#xai-setup input[data-method]", timeout=WAIT_MS)
    wait_grid(frame)
    frame.wait_for_selector("#xai-scatter", timeout=WAIT_MS)
    return frame


def choose_theme(page, name):
    """Pick Light, Dark or Browser default in TensorBoard's own theme menu."""
    page.click(THEME_MENU)
    page.get_by_role("menuitem", name=name).click()
    page.keyboard.press("Escape")


def theme_of(frame):
    return frame.evaluate("[document.documentElement.dataset.theme, getComputedStyle(document.body).backgroundColor]")


def run_axe(frame):
    """axe-core's violations on the tab's document: (rule, impact, help, first failing nodes)."""
    with open(AXE) as f:
        source = f.read()
    frame.evaluate("() => { if (!window.axe) { %s\n } }" % source)
    return frame.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations.map(v => "
        "({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 4).map(n => n.target.join(' ') + ': ' + n.failureSummary)}))"
    )


def tab_to(page, frame, selector, limit=200):
    """Press Tab until the focused element in the frame matches `selector` (the keyboard's way there)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if frame.evaluate("(s) => !!document.activeElement && document.activeElement.matches(s)", selector):
            return
    raise AssertionError("Tab never reached %s" % selector)


def test_dark_mode_follows_tensorboards_own_setting(tab):
    page, frame, _ = tab
    assert theme_of(frame) == ["light", "rgb(255, 255, 255)"]
    choose_theme(page, "Dark")
    frame.wait_for_function("document.documentElement.dataset.theme === 'dark'", timeout=10_000)
    assert theme_of(frame) == ["dark", "rgb(48, 48, 48)"]  # TensorBoard's dark background, #303030
    assert frame.evaluate("getComputedStyle(document.body).color") == "rgb(255, 255, 255)"
    frame.locator("#xai-compare").screenshot(path=os.path.join(SCREENSHOTS, "grid_dark.png"))
    # TensorBoard's setting wins over the browser's preference, both ways.
    page.emulate_media(color_scheme="light")
    page.wait_for_timeout(300)
    assert theme_of(frame)[0] == "dark"
    choose_theme(page, "Light")
    frame.wait_for_function("document.documentElement.dataset.theme === 'light'", timeout=10_000)
    page.emulate_media(color_scheme="dark")
    page.wait_for_timeout(300)
    assert theme_of(frame) == ["light", "rgb(255, 255, 255)"]
    page.emulate_media(color_scheme="light")


def test_without_tensorboard_above_the_browser_preference_decides(tb_url, browser_context):
    page = browser_context.new_page()  # the plugin's page opened alone: no TensorBoard to follow
    page.emulate_media(color_scheme="dark")
    page.goto(tb_url + "/data/plugin_entry.html?name=xai")
    page.wait_for_selector("#xai-setup input[data-method]", timeout=WAIT_MS)
    assert theme_of(page.main_frame) == ["dark", "rgb(48, 48, 48)"]
    page.emulate_media(color_scheme="light")
    page.wait_for_function("document.documentElement.dataset.theme === 'light'", timeout=10_000)
    assert theme_of(page.main_frame) == ["light", "rgb(255, 255, 255)"]
    page.close()


def test_nothing_light_is_left_in_dark_mode(tab):
    page, frame, _ = tab
    choose_theme(page, "Dark")
    frame.wait_for_function("document.documentElement.dataset.theme === 'dark'", timeout=10_000)
    assert frame.evaluate(LIGHT_BACKGROUNDS) == []
    # The plots' text and the scatter's points take the theme's colours too.
    fills = frame.evaluate("[...document.querySelectorAll('#xai-scatter svg text')].map(t => getComputedStyle(t).fill)")
    assert fills and set(fills) == {"rgb(255, 255, 255)"}, fills
    choose_theme(page, "Light")
    frame.wait_for_function("document.documentElement.dataset.theme === 'light'", timeout=10_000)
    assert set(frame.evaluate("[...document.querySelectorAll('#xai-scatter svg text')].map(t => getComputedStyle(t).fill)")) == {"rgb(33, 33, 33)"}


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_runs_carry_tensorboards_run_colours(tab, tb_url, browser_context, dark):
    page, frame, _ = tab
    choose_theme(page, "Dark" if dark else "Light")
    frame.wait_for_function("(t) => document.documentElement.dataset.theme === t", arg="dark" if dark else "light", timeout=10_000)
    ours = frame.evaluate(SWATCHES)
    assert ours == {run: hex_to_rgb(EXPECTED[run][int(dark)]) for run in ("alpha", "beta")}
    headers = frame.evaluate("[...document.querySelectorAll('#xai-grid thead .xai-swatch')].map(s => [s.dataset.run, getComputedStyle(s).backgroundColor])")
    assert headers and all(color == ours[run] for run, color in headers), headers
    # TensorBoard's own runs table (the time series dashboard) shows the same colours.
    other = browser_context.new_page()
    other.goto(tb_url + "/#timeseries")
    other.wait_for_selector(".run-color-swatch", timeout=WAIT_MS)
    theirs = other.evaluate(  # a row of the runs table: tb-data-table-content-row in 2.21, div[role=row] in 2.14
        "() => Object.fromEntries([...document.querySelectorAll('.run-color-swatch')].map(s =>"
        " [s.closest('tb-data-table-content-row, [role=row]').innerText.trim().split(/\\s+/)[0], getComputedStyle(s).backgroundColor]))"
    )
    other.close()
    assert {run: theirs[run] for run in ("alpha", "beta")} == ours, theirs
    choose_theme(page, "Light")


def test_the_run_filter_takes_a_regex_like_tensorboards(tab):
    page, frame, errors = tab
    box = frame.get_by_label("Filter runs")
    shown = lambda: frame.evaluate("[...document.querySelectorAll('.xai-run-check')].map(c => c.dataset.run)")  # noqa: E731
    box.fill("^b")
    assert shown() == ["beta"]
    box.fill("A$")  # case-insensitive, anchored: both names end in a
    assert shown() == ["alpha", "beta"]
    box.fill("lph|^bet")
    assert shown() == ["alpha", "beta"]
    box.fill("al(")
    alert = frame.locator("#xai-run-filter-error")
    assert alert.get_attribute("role") == "alert"
    assert alert.inner_text().startswith("not a valid regular expression")
    assert box.get_attribute("aria-invalid") == "true"
    assert shown() == []
    assert frame.evaluate("document.activeElement.id") == "xai-run-filter"  # typing goes on
    box.fill("")
    assert shown() == ["alpha", "beta"] and frame.locator("#xai-run-filter-error").count() == 0
    assert not [e for e in errors if "page error" in e], errors


def test_arrow_keys_move_samples_and_a_focused_map_takes_a_keyboard_probe(tab):
    page, frame, _ = tab
    frame.locator("#xai-rows").click()  # focus in the tab, on no control
    page.keyboard.press("ArrowRight")
    wait_grid(frame)
    assert grid_rows(frame) == [1]
    tab_to(page, frame, "#xai-grid canvas.xai-map")
    focused = frame.evaluate(
        "() => { const c = document.activeElement, s = getComputedStyle(c);"
        " return [c.matches(':focus-visible'), s.outlineStyle, parseFloat(s.outlineWidth), c.getAttribute('aria-label')]; }"
    )
    assert focused[0] and focused[1] != "none" and focused[2] >= 2, focused  # a visible focus ring
    assert focused[3].startswith("sample 1, alpha at step 3"), focused
    readouts = lambda: frame.evaluate("[...document.querySelectorAll('#xai-grid .xai-cell[data-state=ready] .xai-readout')].map(r => r.textContent)")  # noqa: E731
    where = lambda: {tuple(map(int, r.split(":")[0].strip("()").split(","))) for r in readouts()}  # noqa: E731
    page.keyboard.press("ArrowRight")
    first = where()
    assert len(readouts()) == 2 and len(first) == 1, readouts()  # the same map pixel in every panel
    x, y = first.pop()
    page.keyboard.press("ArrowDown")
    assert where() == {(x, y + 1)}
    page.keyboard.press("Shift+ArrowLeft")
    assert where() == {(x - 4, y + 1)}
    assert grid_rows(frame) == [1]  # arrows over a map move the probe, not the samples
    assert frame.locator("#xai-grid .xai-readout").first.get_attribute("aria-live") == "polite"
    page.keyboard.press("Escape")
    assert frame.evaluate("[...document.querySelectorAll('#xai-grid .xai-readout')].every(r => r.textContent === '')")
    frame.locator("#xai-rows").click()
    page.keyboard.press("ArrowLeft")
    wait_grid(frame)
    assert grid_rows(frame) == [0]


def test_the_keyboard_focus_stays_put_when_the_tab_redraws(tab):
    page, frame, _ = tab
    active = lambda: frame.evaluate("document.activeElement.id")  # noqa: E731
    tab_to(page, frame, "#xai-next")
    page.keyboard.press("Enter")
    wait_grid(frame)
    assert grid_rows(frame) == [1] and active() == "xai-next"  # the toolbar was rebuilt around it
    page.keyboard.press("Shift+Tab")
    assert active() == "xai-prev"
    page.keyboard.press("Enter")
    wait_grid(frame)
    assert grid_rows(frame) == [0] and active() == "xai-prev"
    tab_to(page, frame, ".xai-run-check[data-run=beta]")
    page.keyboard.press("Space")
    frame.wait_for_function("document.querySelectorAll('#xai-grid thead th').length === 2")  # beta's column left
    assert frame.evaluate("[document.activeElement.dataset.run, document.activeElement.checked]") == ["beta", False]
    page.keyboard.press("Space")
    frame.wait_for_function("document.querySelectorAll('#xai-grid thead th').length === 3")
    assert frame.evaluate("[document.activeElement.dataset.run, document.activeElement.checked]") == ["beta", True]
    tab_to(page, frame, "#xai-timeline-slider")
    page.keyboard.press("ArrowLeft")
    frame.wait_for_function("document.querySelector('#xai-timeline-step').textContent.startsWith('step 2')")
    assert active() == "xai-timeline-slider"
    page.keyboard.press("ArrowRight")
    frame.wait_for_function("document.querySelector('#xai-timeline-step').textContent.startsWith('step 3')")
    wait_grid(frame)


def test_the_scatter_is_usable_by_keyboard(tab):
    page, frame, _ = tab
    tab_to(page, frame, "#xai-scatter")
    assert frame.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("ArrowRight")
    frame.wait_for_selector("#xai-tooltip:not(.xai-hidden)", timeout=10_000)
    tip = frame.locator("#xai-tooltip").inner_text()
    index = int(tip.split("#")[1].split()[0])
    assert "alpha@3" in tip and "beta@3" in tip
    said = frame.locator("#xai-plot-status").inner_text()  # the read-out for a screen reader
    assert said.startswith("sample #%d, true: " % index) and "; alpha@3: " in said and "; beta@3: " in said, said
    rows = grid_rows(frame)
    page.keyboard.press("Enter")  # the keyboard's click: the point joins the grid
    frame.wait_for_function("(i) => [...document.querySelectorAll('#xai-grid tbody tr')].some(r => +r.dataset.index === i)", arg=index)
    assert grid_rows(frame) == (rows if index in rows else rows + [index])
    wait_grid(frame)
    # Shift+arrows draw a rectangle from the cursor (the keyboard's brush); Enter sends what it holds.
    frame.focus("#xai-scatter")
    for key in ["Shift+ArrowLeft"] * 6 + ["Shift+ArrowDown"] * 12:
        page.keyboard.press(key)
    x, y, w, h = frame.evaluate(
        "['x', 'y', 'width', 'height'].map(a => +document.querySelector('#xai-scatter .xai-brush .selection').getAttribute(a))"
    )
    assert w > 0 and h > 0
    points = {p["index"]: p for p in frame.evaluate("async () => (await import('./index.js')).current().suggestions.plot.positions()")}
    said = int(frame.locator("#xai-plot-status").inner_text().split()[0])
    page.keyboard.press("Enter")
    frame.wait_for_function("(n) => document.querySelectorAll('#xai-grid tbody tr').length === n", arg=min(16, said))
    picked = grid_rows(frame)
    eps = 1e-6
    assert picked and all(x - eps <= points[i]["x"] <= x + w + eps and y - eps <= points[i]["y"] <= y + h + eps for i in picked)
    strictly = [i for i, p in points.items() if x + eps < p["x"] < x + w - eps and y + eps < p["y"] < y + h - eps]
    assert said >= len(strictly) and (said > 16 or set(strictly) <= set(picked))
    page.keyboard.press("Escape")
    assert frame.locator("#xai-tooltip").get_attribute("class").split().count("xai-hidden") == 1
    wait_grid(frame)


def test_the_histogram_is_usable_by_keyboard(tab):
    page, frame, _ = tab
    frame.get_by_role("checkbox", name="beta", exact=True).uncheck()
    frame.wait_for_selector("#xai-histogram", timeout=WAIT_MS)
    bars = frame.evaluate("async () => (await import('./index.js')).current().suggestions.plot.bars()")
    assert len(bars) >= 2, bars
    tab_to(page, frame, "#xai-histogram")
    page.keyboard.press("ArrowRight")  # the first non-empty bar, read out as on hover
    frame.wait_for_selector("#xai-tooltip:not(.xai-hidden)", timeout=10_000)
    assert frame.locator("#xai-tooltip").inner_text().startswith("#%d" % bars[0]["indices"][0])
    assert frame.locator("#xai-plot-status").inner_text().endswith(": %d samples" % len(bars[0]["indices"]))
    page.keyboard.press("Shift+ArrowRight")  # a range of two bars
    assert frame.locator("#xai-plot-status").inner_text().startswith("2 bars, %d samples" % (len(bars[0]["indices"]) + len(bars[1]["indices"])))
    page.keyboard.press("Enter")
    expected = sorted(bars[0]["indices"] + bars[1]["indices"])[:16]
    frame.wait_for_function("(n) => document.querySelectorAll('#xai-grid tbody tr').length === n", arg=len(expected))
    assert grid_rows(frame) == expected
    page.keyboard.press("Escape")
    frame.get_by_role("checkbox", name="beta", exact=True).check()
    frame.wait_for_selector("#xai-scatter", timeout=WAIT_MS)
    wait_grid(frame)


def test_every_control_has_its_own_accessible_name(tab):
    _, frame, _ = tab
    # Bring out the conditional controls too: a method's parameters (occlusion's), the class search.
    frame.get_by_role("checkbox", name="Occlusion", exact=True).check()
    frame.wait_for_selector("#xai-params-title", timeout=WAIT_MS)
    frame.select_option("#xai-target", "class")
    frame.wait_for_selector("#xai-class", timeout=WAIT_MS)
    assert frame.get_by_label("Class", exact=True).get_attribute("id") == "xai-class"
    wait_grid(frame)
    unlabelled = frame.evaluate(
        "[...document.querySelectorAll('input, select')].filter(e => e.getClientRects().length && !(e.labels && e.labels.length))"
        ".map(e => e.outerHTML.slice(0, 120))"
    )
    assert unlabelled == [], unlabelled  # every input by a <label>, none by its placeholder alone
    for run in ("alpha", "beta"):
        box = frame.get_by_role("checkbox", name=run, exact=True)
        assert box.count() == 1 and box.get_attribute("data-run") == run
    chips = frame.evaluate("[...document.querySelectorAll('.xai-chip')].map(c => c.getAttribute('aria-label'))")
    assert len(chips) == len(set(chips)) == 6, chips
    nameless = frame.evaluate(
        "[...document.querySelectorAll('button, [tabindex]')].filter(e => !(e.getAttribute('aria-label') || e.textContent.trim()))"
        ".map(e => e.outerHTML.slice(0, 120))"
    )
    assert nameless == [], nameless


@pytest.mark.parametrize("theme", ["Light", "Dark"])
def test_axe_finds_no_serious_or_critical_violation(tab, theme):
    page, frame, _ = tab
    choose_theme(page, theme)
    frame.wait_for_function("(t) => document.documentElement.dataset.theme === t", arg=theme.lower(), timeout=10_000)
    wait_grid(frame)
    frame.wait_for_selector("#xai-scatter", timeout=WAIT_MS)
    violations = run_axe(frame)
    bad = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert bad == [], json.dumps(bad, indent=1)
    assert violations == [], json.dumps(violations, indent=1)  # none of lesser impact either (landmarks, headings)
    choose_theme(page, "Light")


def test_no_errors_on_the_page(tab):
    _, _, errors = tab
    assert [e for e in errors if "page error" in e or "Uncaught" in e] == [], errors
