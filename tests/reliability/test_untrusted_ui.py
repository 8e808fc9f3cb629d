"""The XAI tab says why a Lambda checkpoint is refused: a real TensorBoard, Chromium, the cell's text."""

import os
import subprocess

from tests.browser.conftest import BUNDLE, REPO, serve_tensorboard
from tests.browser.test_xai_tab import WAIT_MS, wait_for_frame, wait_grid
from tests.conftest import CHROMIUM_ARGS
from tests.reliability.test_untrusted_models import write_untrusted


def test_the_tab_shows_why_a_lambda_checkpoint_is_refused(tmp_path, chromium_path):
    from playwright.sync_api import sync_playwright

    if not os.path.exists(BUNDLE):  # as tests/browser does: the built dashboard
        subprocess.check_call(["npm", "run", "build"], cwd=os.path.join(REPO, "frontend"))
    marker = str(tmp_path / "code-ran")
    logdir = write_untrusted(str(tmp_path / "logdir"), marker, runs=("lambda", "plain"))
    os.makedirs(tmp_path / "cache")
    with serve_tensorboard(logdir, str(tmp_path / "cache")) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "/#xai")
            frame = wait_for_frame(page)
            frame.wait_for_selector("#xai-setup input[data-method]", timeout=WAIT_MS)
            for run in ("lambda", "plain"):
                box = frame.locator('.xai-run-check[data-run="%s"]' % run)
                if not box.is_checked():
                    box.click()
            methods = frame.evaluate("[...document.querySelectorAll('input[data-method][type=checkbox]')].map(i => i.dataset.method)")
            for method in methods:
                box = frame.locator('input[type=checkbox][data-method="%s"]' % method)
                if box.is_checked() != (method == "gradient"):
                    box.click()
            states = wait_grid(frame)
            texts = frame.evaluate(
                "[...document.querySelectorAll('#xai-grid .xai-cell')].map(c => [c.dataset.key, c.dataset.state, c.textContent])"
            )
        finally:
            browser.close()
    assert "ready" in states and "error" in states, texts
    refused = [t for key, state, t in texts if state == "error"]
    assert refused and all("Lambda layer, which runs code stored in the file; refused" in t for t in refused), texts
    assert all("--xai_allow_unsafe_models" in t for t in refused)
    assert not os.path.exists(marker)
