"""Which map to trust, in Chromium against a real TensorBoard: a faithfulness score under each map with
its curve on hover and focus, the ranking of the methods, the sanity badge, the first-vs-last line of
the over-training panel, the agreement matrices, the evidence axis of the suggestion scatter, and
axe-core with all of it on. Every number the tab shows is checked against the server's own answer to
the same request (asked here over HTTP), so the test fails if the tab drops, mislabels or reorders
what the routes say. The tests run in file order on one page."""

import io
import json
import os
import urllib.parse
import urllib.request

import numpy as np
import pytest

from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_like_tensorboard import choose_theme, run_axe
from tests.browser.test_xai_tab import WAIT_MS, wait_for_frame, wait_grid

MODELS = [("alpha", 3), ("beta", 3)]
METHODS = ["gradient", "guided_backprop", "input_t_gradient"]
ROWS = [0, 1]


def url_state(trust):
    """The tab's URL hash for the two runs' last checkpoints, three methods, two rows and `trust` switches."""
    state = {"s": ["alpha", "val"], "m": [list(m) for m in MODELS], "a": [[m, {}] for m in METHODS], "t": "predicted", "r": ROWS, "q": trust}
    return "#xai&xai=" + urllib.parse.quote(json.dumps(state))


def post(base, route, body):
    """The server's JSON answer to a POST compute route."""
    request = urllib.request.Request(
        base + "/data/plugin/xai/" + route,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-XAI-Request": "1"},
    )
    with urllib.request.urlopen(request, timeout=600) as r:
        return json.load(r)


def body(**extra):
    """The request the tab makes for the grid's models, methods and rows."""
    out = {
        "models": [{"run": r, "step": s} for r, s in MODELS],
        "samples": {"run": "alpha", "name": "val"},
        "indices": ROWS,
        "methods": [{"id": m, "params": {}} for m in METHODS],
        "target": {"kind": "predicted"},
        "layer": None,
        "neuron": None,
    }
    out.update(extra)
    return out


@pytest.fixture(scope="module")
def tab(tensorboard, browser_context):
    """The XAI tab with faithfulness scores on; yields (page, frame, base URL, errors)."""
    page = browser_context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append("page error: %s" % e))
    page.on("response", lambda r: errors.append("%s %s" % (r.status, r.url)) if r.status >= 400 else None)
    page.goto(tensorboard + "/" + url_state([1, 0, 0, "deletion", "mean"]))
    frame = wait_for_frame(page)
    wait_grid(frame)
    yield page, frame, tensorboard, errors
    page.close()


def shown_scores(frame):
    """Every score line under the grid's maps: (cell key, metric, auc, random) as the tab holds them."""
    return frame.evaluate(
        "[...document.querySelectorAll('#xai-grid .xai-cell')].map(c => { const s = c.querySelector('.xai-score');"
        " return s && [c.dataset.key, s.dataset.metric, +s.dataset.auc, +s.dataset.random, s.textContent]; })"
    )


def wait_scores(frame, metric):
    frame.wait_for_function(
        "(m) => { const c = [...document.querySelectorAll('#xai-grid .xai-cell')];"
        " return c.length && c.every(x => x.querySelector('.xai-score[data-metric=' + m + ']')); }",
        arg=metric,
        timeout=WAIT_MS,
    )


def test_each_map_shows_the_servers_score_and_its_curve_on_hover_and_focus(tab):
    page, frame, base, _ = tab
    wait_scores(frame, "deletion")
    answer = post(base, "scores", body(metrics=["deletion", "insertion", "morf", "lerf"], fill="mean", steps=16, region=4))
    expected = {}
    for cell in answer["cells"]:
        assert cell["ok"], cell
        for k, index in enumerate(ROWS):
            key = json.dumps([index, cell["run"], cell["step"], cell["method"]], separators=(",", ":"))
            expected[key] = (cell["scores"]["deletion"]["auc"][k], cell["scores"]["deletion"]["random_auc"][k])
    shown = shown_scores(frame)
    assert len(shown) == len(expected) == len(MODELS) * len(METHODS) * len(ROWS)
    for key, metric, auc, random, text in shown:
        assert metric == "deletion" and (auc, random) == pytest.approx(expected[key], abs=1e-12), key
        assert "lower is better" in text and ("%.3f" % expected[key][0]) in text
    # Hovering a score shows its curve: the map's order and the random order, as SVG paths.
    first = frame.locator("#xai-grid .xai-score").first
    popup = frame.locator("#xai-grid .xai-curve-popup").first
    assert "xai-hidden" in popup.get_attribute("class")
    first.hover()
    assert "xai-hidden" not in popup.get_attribute("class")
    assert popup.locator("path.xai-curve-map").get_attribute("d").startswith("M0,")
    assert popup.locator("path.xai-curve-random").count() == 1
    page.mouse.move(0, 0)
    assert "xai-hidden" in popup.get_attribute("class")
    # The keyboard's way: focus shows it too, Escape hides it.
    first.focus()
    assert "xai-hidden" not in popup.get_attribute("class")
    page.keyboard.press("Escape")
    assert "xai-hidden" in popup.get_attribute("class")
    frame.locator("#xai-grid").screenshot(path=os.path.join(SCREENSHOTS, "trust_scores.png"))


def test_the_ranking_orders_the_methods_by_their_mean_score_and_follows_the_metric(tab):
    _, frame, base, _ = tab
    frame.wait_for_selector("#xai-rank-table", timeout=WAIT_MS)
    answer = post(base, "scores", body(metrics=["deletion", "insertion", "morf", "lerf"], fill="mean", steps=16, region=4))

    def means(metric):
        out = {m: np.mean([a for c in answer["cells"] if c["method"] == m for a in c["scores"][metric]["auc"]]) for m in METHODS}
        return out

    def table():
        return frame.evaluate(
            "[...document.querySelectorAll('#xai-rank-table tbody tr')].map(r => [r.dataset.method, r.dataset.rank,"
            " [...r.querySelectorAll('td')].map(td => td.textContent)])"
        )

    rows = table()
    deletion = means("deletion")
    ranked = [m for m, _, _ in rows if m in METHODS]
    assert ranked == sorted(METHODS, key=lambda m: deletion[m])  # lower is better
    for method, _, cells in rows:
        if method in METHODS:
            assert cells[1] == "%.3f" % deletion[method], (method, cells)
    assert "(random order)" in [m for m, _, _ in rows]
    frame.select_option("#xai-score-metric", "insertion")
    wait_scores(frame, "insertion")
    frame.wait_for_function("document.querySelector('#xai-rank-table caption').textContent.includes('insertion')", timeout=WAIT_MS)
    insertion = means("insertion")
    assert [m for m, _, _ in table() if m in METHODS] == sorted(METHODS, key=lambda m: -insertion[m])  # higher is better
    assert all("higher is better" in s[4] for s in shown_scores(frame))
    frame.select_option("#xai-score-metric", "deletion")
    wait_scores(frame, "deletion")


def test_the_maps_export_carries_the_scores(tab):
    page, frame, base, _ = tab
    with page.expect_download() as download:
        frame.click("#xai-export-npz")
    with open(download.value.path(), "rb") as f:
        npz = np.load(io.BytesIO(f.read()))
    answer = post(base, "scores", body(metrics=["deletion", "insertion", "morf", "lerf"], fill="mean", steps=16, region=4))
    for cell in answer["cells"]:
        name = "%s_step%d_%s" % (cell["run"], cell["step"], cell["method"])
        for metric in ("deletion", "insertion", "morf", "lerf"):
            np.testing.assert_allclose(npz[name + "_%s_auc" % metric], cell["scores"][metric]["auc"], rtol=1e-6)
            np.testing.assert_allclose(npz[name + "_%s_curve" % metric], cell["scores"][metric]["curves"], rtol=1e-6)
    with page.expect_download() as download:
        frame.click("#xai-export-scores")
    lines = open(download.value.path()).read().splitlines()
    assert lines[0] == "index,run,step,method,metric,better,auc,random_auc"
    assert len(lines) == 1 + len(MODELS) * len(METHODS) * len(ROWS) * 4


def test_the_sanity_badge_marks_the_columns_the_server_flags_and_says_why(tab):
    page, frame, base, _ = tab
    frame.check("#xai-trust-sanity")
    frame.wait_for_selector("#xai-sanity-table", timeout=WAIT_MS)
    answer = post(base, "sanity", body())
    flagged = {(c["run"], c["step"], c["method"]) for c in answer["cells"] if c["ok"] and c["badge"]}
    rows = frame.evaluate("[...document.querySelectorAll('#xai-sanity-table tbody tr')].map(r => [r.dataset.run, r.dataset.method, r.dataset.flagged, r.textContent])")
    assert len(rows) == len(answer["cells"]) == len(MODELS) * len(METHODS)
    for (run, method, shown, text), cell in zip(rows, answer["cells"]):
        assert (run, method) == (cell["run"], cell["method"])
        assert shown == ("true" if (cell["run"], cell["step"], cell["method"]) in flagged else "false")
        assert ("%.2f" % cell["mean"][-1]) in text, (text, cell["mean"])
    # The grid's column titles carry the badge exactly where the server set it.
    titled = frame.evaluate(
        "[...document.querySelectorAll('#xai-grid thead th')].filter(th => th.querySelector('.xai-badge'))"
        ".map(th => th.getAttribute('title'))"
    )
    assert sorted(titled) == sorted("%s at step %d, %s" % (r, s, labels(base)[m]) for r, s, m in flagged)
    if flagged:
        assert "cannot show what the model learned" in frame.locator("#xai-sanity-explain").inner_text()
    else:
        assert frame.locator("#xai-sanity-explain").count() == 0
    # The verdict above the ranking: the best method on deletion that beats the random order and is not flagged.
    scores = post(base, "scores", body(metrics=["deletion", "insertion", "morf", "lerf"], fill="mean", steps=16, region=4))
    mean = {m: np.mean([a for c in scores["cells"] if c["method"] == m for a in c["scores"]["deletion"]["auc"]]) for m in METHODS}
    random = np.mean([a for c in scores["cells"] if c["method"] == METHODS[0] for a in c["scores"]["deletion"]["random_auc"]])
    flagged_methods = {m for _, _, m in flagged}
    trusted = sorted((m for m in METHODS if mean[m] < random and m not in flagged_methods), key=lambda m: mean[m])
    frame.wait_for_function(
        "() => { const v = document.querySelector('#xai-verdict'); return v.textContent && !v.textContent.includes('turn on the sanity check'); }",
        timeout=WAIT_MS,
    )
    said = frame.locator("#xai-verdict").inner_text()
    names = labels(base)
    if trusted:
        assert said.startswith("Trust first: %s, the most faithful on deletion" % names[trusted[0]]), said
    else:
        assert said.startswith("None of the chosen methods"), said
    if flagged_methods:
        assert "Barely depend on the weights (sanity check): " in said
        assert all(names[m] in said.split("(sanity check): ")[1] for m in flagged_methods), said
    # The over-training panel: first vs last checkpoint of its run, per method, as the route answers.
    frame.wait_for_selector("#xai-first-last [data-method]", timeout=WAIT_MS)
    first_last = post(base, "first_last", {k: v for k, v in body(runs=["alpha"]).items() if k != "models"})
    lines = frame.evaluate("[...document.querySelectorAll('#xai-first-last [data-method]')].map(d => [d.dataset.method, d.dataset.mean, d.textContent])")
    assert [m for m, _, _ in lines] == METHODS
    for (method, mean, text), cell in zip(lines, first_last["cells"]):
        assert cell["ok"] and float(mean) == pytest.approx(cell["mean"], abs=1e-12)
        assert "step %d and step %d" % (cell["first"], cell["last"]) in text


def labels(base):
    """Each method's display label, as GET methods names it."""
    with urllib.request.urlopen(base + "/data/plugin/xai/methods", timeout=60) as r:
        return {m["id"]: m["label"] for m in json.load(r)["methods"]}


def test_the_agreement_matrices_print_the_servers_correlations(tab):
    _, frame, base, _ = tab
    frame.check("#xai-trust-agreement")
    frame.wait_for_selector("#xai-agreement-methods table", timeout=WAIT_MS)
    answer = post(base, "agreement", body())

    def tables(selector):
        return frame.evaluate(
            "(s) => [...document.querySelectorAll(s + ' table')].map(t => [...t.querySelectorAll('tbody tr')]"
            ".map(r => [...r.querySelectorAll('td')].map(td => td.textContent)))",
            selector,
        )

    def printed(matrix):
        return [["–" if v is None else "%.3f" % v for v in row] for row in matrix]

    assert tables("#xai-agreement-methods") == [printed(m["matrix"]) for m in answer["methods"]]
    assert tables("#xai-agreement-models") == [printed(m["matrix"]) for m in answer["models"]]
    frame.select_option("#xai-agreement-sample", "1")
    assert tables("#xai-agreement-methods") == [printed(m["per_sample"][1]) for m in answer["methods"]]
    frame.select_option("#xai-agreement-sample", "mean")


def test_the_scatter_has_the_evidence_axis(tab):
    _, frame, base, _ = tab
    frame.wait_for_selector("#xai-scatter", timeout=WAIT_MS)
    frame.select_option("#xai-scatter-axis", "evidence")
    frame.wait_for_selector("#xai-evidence-note", timeout=WAIT_MS)
    answer = post(base, "suggestions", {"models": body()["models"], "samples": body()["samples"], "layer": None, "neuron": None, "evidence": True})
    values = answer["per_sample"]["evidence_disagreement"]
    covered = sorted(i for i, v in enumerate(values) if v is not None)
    points = frame.evaluate("async () => (await import('./index.js')).current().suggestions.plot.positions()")
    assert sorted(p["index"] for p in points) == covered
    # Higher disagreement is drawn higher (smaller y on screen).
    by_value = sorted(points, key=lambda p: values[p["index"]])
    assert all(a["y"] >= b["y"] for a, b in zip(by_value, by_value[1:]))
    assert frame.evaluate("[...document.querySelectorAll('#xai-scatter svg text')].some(t => t.textContent.startsWith('evidence disagreement'))")


@pytest.mark.parametrize("theme", ["Light", "Dark"])
def test_axe_finds_no_violation_with_every_trust_part_on(tab, theme):
    page, frame, _, errors = tab
    choose_theme(page, theme)
    frame.wait_for_function("(t) => document.documentElement.dataset.theme === t", arg=theme.lower(), timeout=10_000)
    frame.locator("#xai-grid .xai-score").first.focus()  # a curve shown, too
    violations = run_axe(frame)
    assert violations == [], json.dumps(violations, indent=1)
    if theme == "Dark":  # the panel follows the theme; only the matrices' cells keep their data colours
        backgrounds = frame.evaluate(
            "() => [...document.querySelectorAll('#xai-trust *, #xai-grid .xai-score-wrap *')].filter(el => el.getClientRects().length"
            " && !el.closest('.xai-matrix tbody td')).map(el => getComputedStyle(el).backgroundColor)"
        )
        assert all(bg in ("rgba(0, 0, 0, 0)", "rgb(66, 66, 66)", "rgb(58, 58, 58)", "rgb(48, 48, 48)", "rgb(245, 124, 0)") for bg in backgrounds), set(backgrounds)
        frame.locator("#xai-trust").screenshot(path=os.path.join(SCREENSHOTS, "trust_dark.png"))
    if theme == "Light":
        frame.locator("#xai-trust").screenshot(path=os.path.join(SCREENSHOTS, "trust.png"))
    choose_theme(page, "Light")
    assert [e for e in errors if "page error" in e or e.startswith(("4", "5"))] == [], errors
