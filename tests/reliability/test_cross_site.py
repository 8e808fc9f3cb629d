"""Cross-site requests: every compute route refuses a request without X-XAI-Request: 1 or from a
foreign Origin with 403 before doing anything, over real HTTP; the server's own origin is served."""

import json
import urllib.error
import urllib.request

import pytest

from tests.reliability.conftest import SAMPLES, HttpServed

BODIES = {
    "predictions": {"models": [{"run": "m1", "step": 1}], "samples": SAMPLES, "indices": [0], "request_id": "x1"},
    "attributions": {"models": [{"run": "m1", "step": 1}], "samples": SAMPLES, "indices": [0], "methods": [{"id": "gradient"}]},
    "suggestions": {"models": [{"run": "m1", "step": 1}], "samples": SAMPLES},
    "cancel": {"request_id": "victim"},
    "scores": {"models": [{"run": "m1", "step": 1}], "samples": SAMPLES, "indices": [0], "methods": [{"id": "gradient"}]},
    "sanity": {"models": [{"run": "m1", "step": 1}], "samples": SAMPLES, "indices": [0], "methods": [{"id": "gradient"}]},
    "agreement": {"models": [{"run": "m1", "step": 1}], "samples": SAMPLES, "indices": [0], "methods": [{"id": "gradient"}]},
    "first_last": {"runs": ["m1"], "samples": SAMPLES, "indices": [0], "methods": [{"id": "gradient"}]},
    "applicability": {"run": "m1", "step": 1},
}
REFUSED = [
    ({}, "X-XAI-Request"),
    ({"X-XAI-Request": "0"}, "X-XAI-Request"),
    ({"X-XAI-Request": "1", "Origin": "http://evil.example"}, "another origin"),
    ({"X-XAI-Request": "1", "Origin": "null"}, "another origin"),
    ({"X-XAI-Request": "1", "Origin": "http://127.0.0.1:1"}, "another origin"),
]


@pytest.fixture(scope="module")
def site(three_models, tmp_path_factory):
    """The plugin on a real port."""
    server = HttpServed(three_models, str(tmp_path_factory.mktemp("cache")))
    yield server
    server.close()


def call(url, body=None, headers=None, method=None):
    """(status, headers, parsed JSON) of one request."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}, **{"Content-Type": "application/json"}), method=method)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read())


@pytest.mark.parametrize("route", sorted(BODIES))
@pytest.mark.parametrize("headers, reason", REFUSED)
def test_compute_routes_refuse_cross_site_requests(site, route, headers, reason):
    status, response_headers, body = call(site.base + route, BODIES[route], headers)
    assert status == 403 and reason in body["error"]
    assert "Access-Control-Allow-Origin" not in response_headers
    assert site.plugin.pool.stats["submitted"] == 0 and site.plugin.jobs.get("victim") is None


def test_compute_routes_refuse_get_and_grant_no_preflight(site):
    for route in BODIES:
        status, _, body = call(site.base + route, headers={"X-XAI-Request": "1"})
        assert status == 405 and "POST" in body["error"]
        status, headers, _ = call(site.base + route, headers={"Origin": "http://evil.example",
                                  "Access-Control-Request-Headers": "x-xai-request"}, method="OPTIONS")  # fmt: skip
        assert status == 405 and "Access-Control-Allow-Origin" not in headers


def test_the_servers_own_origin_is_served(site):
    own = {"X-XAI-Request": "1", "Origin": "http://127.0.0.1:%d" % site.port}
    status, _, body = call(site.base + "predictions", BODIES["predictions"], own)
    assert status == 200 and body["models"][0]["ok"] is True
    status, _, body = call(site.base + "predictions", BODIES["predictions"], {"X-XAI-Request": "1"})  # no Origin: same-origin fetch
    assert status == 200
