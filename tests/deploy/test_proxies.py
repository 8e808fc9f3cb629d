"""Compute routes behind reverse proxies that rewrite Host: a TLS-terminating ingress (X-Forwarded-*), a
notebook-style proxy serving TensorBoard under /proxy/6006/ on another port (RFC 7239 Forwarded), both
over a real `tensorboard --path_prefix /tb` (its logdir on gs://, see conftest.py); CSRF stays (custom header required, a foreign Origin refused).
The tab itself loads through the TLS ingress in Chromium, draws a map and shows the logdir's listing errors."""

import json
import ssl
import urllib.error
import urllib.request

import pytest

from tests.conftest import CHROMIUM_ARGS
from tests.deploy.reverse_proxy import ReverseProxy

PREDICT = {"models": [{"run": "cnn", "step": 1}], "samples": {"run": "cnn", "name": "val"}, "indices": [0], "top_k": 1}
ROUTE = "/data/plugin/xai/predictions"


@pytest.fixture(scope="module")
def proxied(served, certificate):
    """(TensorBoard's port, {name: ReverseProxy}): three proxies in front of the shared TensorBoard (--path_prefix /tb)."""
    port = served[0]
    proxies = {
        "ingress": ReverseProxy(port, "/tb/", "/tb/", tls=certificate, report="x-forwarded"),
        "notebook": ReverseProxy(port, "/proxy/6006/", "/tb/", report="forwarded"),
        "silent": ReverseProxy(port, "/tb/", "/tb/", tls=certificate, report=None),
    }
    yield port, proxies
    for proxy in proxies.values():
        proxy.close()


def post(url, origin, certificate, header=True):
    """(status, JSON body) of POST predictions at `url` with the browser's `Origin`."""
    headers = {"Content-Type": "application/json", "Origin": origin}
    if header:
        headers["X-XAI-Request"] = "1"
    request = urllib.request.Request(url, data=json.dumps(PREDICT).encode(), headers=headers, method="POST")
    context = ssl.create_default_context(cafile=certificate[0])
    try:
        with urllib.request.urlopen(request, timeout=120, context=context) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def origin_of(proxy):
    """The Origin a browser sends for pages served by `proxy`."""
    return "%s://127.0.0.1:%d" % (proxy.scheme, proxy.port)


@pytest.mark.parametrize("name", ["ingress", "notebook"])
def test_a_compute_request_through_a_host_rewriting_proxy_is_answered(proxied, certificate, name):
    proxy = proxied[1][name]
    status, body = post(proxy.url + ROUTE, origin_of(proxy), certificate)
    assert status == 200, body
    assert body["models"][0]["ok"] is True and len(body["models"][0]["top_classes"]) == 1


def test_csrf_stays_behind_the_proxy(proxied, certificate):
    proxy = proxied[1]["ingress"]
    status, body = post(proxy.url + ROUTE, "https://evil.example", certificate)
    assert status == 403 and "another origin" in body["error"]
    status, body = post(proxy.url + ROUTE, origin_of(proxy), certificate, header=False)
    assert status == 403 and "X-XAI-Request" in body["error"]
    status, body = post(proxy.url + ROUTE, "http://127.0.0.1:%d" % proxy.port, certificate)  # TLS origin, other scheme
    assert status == 403


def test_a_proxy_that_reports_nothing_is_refused(proxied, certificate):
    """The origin comparison is real: without the proxy's report the browser's origin is foreign."""
    proxy = proxied[1]["silent"]
    status, body = post(proxy.url + ROUTE, origin_of(proxy), certificate)
    assert status == 403, body


def test_forwarded_headers_sent_straight_to_tensorboard_only_move_the_origin(proxied, certificate):
    """A client reaching TensorBoard itself with made-up forwarded headers still needs the custom header."""
    port = proxied[0]
    url = "http://127.0.0.1:%d/tb%s" % (port, ROUTE)
    request = urllib.request.Request(
        url, data=json.dumps(PREDICT).encode(), method="POST",
        headers={"Content-Type": "application/json", "Origin": "https://x.example", "X-Forwarded-Host": "x.example", "X-Forwarded-Proto": "https"},
    )  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 403


@pytest.mark.stack("keras3")
def test_the_tab_draws_a_map_through_the_tls_ingress(proxied, chromium_path, tmp_path):
    from playwright.sync_api import sync_playwright

    from tests.browser.test_xai_tab import wait_for_frame, wait_grid

    proxy = proxied[1]["ingress"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS + ["--ignore-certificate-errors"], headless=True)
        try:
            page = browser.new_page(ignore_https_errors=True, viewport={"width": 1200, "height": 1000})
            refused = []
            page.on("response", lambda r: refused.append(r.url) if r.status == 403 else None)
            page.goto(proxy.url + "/#xai")
            frame = wait_for_frame(page)
            states = wait_grid(frame)
            assert "ready" in states, states
            drawn = frame.evaluate(
                "[...document.querySelectorAll('#xai-grid .xai-cell[data-state=ready] canvas.xai-map')].map((c) => {"
                " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
                " for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; })"
            )
            assert drawn and max(drawn) > 0, drawn
            assert not refused, refused
            shown = frame.locator("#xai-listing-errors").inner_text()  # the logdir's broken manifest, said in the tab
            assert "broken: " in shown and "step-000000001.json" in shown, shown
        finally:
            browser.close()
