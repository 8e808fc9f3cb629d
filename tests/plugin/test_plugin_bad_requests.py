"""Every kind of bad POST gets a clear 4xx with a JSON message, and computes nothing."""

import json

import pytest

from tests.plugin.conftest import POST_HEADERS, body_of

GOOD = {
    "models": [{"run": "cnn", "step": 1}],
    "samples": {"run": "cnn", "name": "val"},
    "indices": [0],
    "methods": [{"id": "grad_cam", "params": {}}],
}


def variant(path, value):
    """GOOD with the field at `path` (a tuple of keys / indices) set to value (or removed if value is DROP)."""
    body = json.loads(json.dumps(GOOD))
    target = body
    for key in path[:-1]:
        target = target[key]
    if value is DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


DROP = object()

BAD_BODIES = [
    (variant(("models",), []), 400, "models"),
    (variant(("models",), [{"run": "cnn", "step": 1}] * 2), 400, "twice"),
    (variant(("models",), "cnn"), 400, "models"),
    (variant(("models", 0, "step"), -1), 400, "step"),
    (variant(("models", 0, "step"), 1.5), 400, "step"),
    (variant(("models", 0, "step"), True), 400, "step"),
    (variant(("models", 0, "step"), "1"), 400, "step"),
    (variant(("models", 0, "step"), 10**30), 400, "step"),
    (variant(("models", 0, "step"), 9), 404, "step 9"),
    (variant(("models", 0, "run"), "../cnn"), 400, "run"),
    (variant(("models", 0, "run"), "%2e%2e/cnn"), 404, "run"),
    (variant(("models", 0, "run"), "/etc/passwd"), 400, "run"),
    (variant(("models", 0, "run"), "cnn\u0000"), 400, "control"),
    (variant(("models", 0, "run"), "c\u00f1n"), 404, "run"),
    (variant(("models", 0, "run"), "missing"), 404, "run"),
    (variant(("models", 0, "extra"), 1), 400, "unknown field"),
    (variant(("samples", "name"), "../../etc"), 400, "name"),
    (variant(("samples", "name"), "train"), 404, "sample set"),
    (variant(("samples", "run"), "b"), 404, "sample set"),
    (variant(("indices",), []), 400, "indices"),
    (variant(("indices",), [-1]), 400, "indices[0]"),
    (variant(("indices",), [6]), 404, "index 6"),
    (variant(("indices",), [0, 0]), 400, "twice"),
    (variant(("indices",), list(range(65))), 400, "indices"),
    (variant(("indices",), [2**40]), 400, "indices[0]"),
    (variant(("methods", 0, "id"), "nope"), 400, "unknown method"),
    (variant(("methods", 0, "params"), {"bogus": 1}), 400, "no parameter"),
    (variant(("methods",), [{"id": "occlusion", "params": {"window": -3}}]), 400, "window"),
    (variant(("methods",), [{"id": "occlusion", "params": {"fill": "blue"}}]), 400, "fill"),
    (variant(("target",), {"kind": "class"}), 400, "index"),
    (variant(("target",), {"kind": "class", "index": -1}), 400, "target.index"),
    (variant(("target",), {"kind": "best"}), 400, "target.kind"),
    (variant(("layer",), 3), 400, "layer"),
    (variant(("neuron",), -1), 400, "neuron"),
    (variant(("request_id",), "../x"), 400, "request_id"),
    (variant(("seed",), 1e300), 400, "seed"),
    (variant(("surprise",), 1), 400, "unknown field"),
    (variant(("samples",), DROP), 400, "lacks"),
]


@pytest.mark.parametrize("body, status, words", BAD_BODIES)
def test_bad_attribution_bodies(served, body, status, words):
    response = served.post("attributions", body)
    assert response.status_code == status, response.get_data(as_text=True)
    assert words in body_of(response)["error"]


@pytest.mark.parametrize(
    "raw, words",
    [
        ('{"models": NaN}', "NaN"),
        ('{"top_k": Infinity}', "Infinity"),
        ('{"top_k": 1e999}', "out of range"),
        ("[1, 2]", "JSON object"),
        ("{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[" * 100000 + "]" * 100000, "JSON"),
        ('{"models": [{"run": "cnn", "step": 1}], "samples": {"run": "cnn", "name": "val"}, "top_k": 0}', "top_k"),
    ],
)
def test_bad_json_is_a_400(served, raw, words):
    response = served.post("predictions", raw)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert words in body_of(response)["error"]


def test_a_body_over_one_mib_is_a_413(served):
    response = served.post("predictions", '{"pad": "' + "x" * (1 << 20) + '"}')
    assert response.status_code == 413 and "limit" in body_of(response)["error"]


def test_post_without_the_custom_header_is_a_403(served):
    response = served.post("attributions", GOOD, headers={})
    assert response.status_code == 403 and "X-XAI-Request" in body_of(response)["error"]


def test_post_from_a_foreign_origin_is_a_403(served):
    headers = dict(POST_HEADERS, Origin="http://evil.example")
    response = served.post("attributions", GOOD, headers=headers)
    assert response.status_code == 403 and "origin" in body_of(response)["error"]


def test_post_from_the_own_origin_is_accepted(served):
    headers = dict(POST_HEADERS, Origin="http://localhost")
    response = served.post("cancel", {"request_id": "own-origin"}, headers=headers)
    assert response.status_code == 200


def test_compute_routes_refuse_get(served):
    for route in ("predictions", "attributions", "suggestions", "cancel"):
        response = served.get(route)
        assert response.status_code == 405 and body_of(response)["error"]


def test_a_neuron_without_a_layer_is_a_400(served):
    body = {"models": [{"run": "cnn", "step": 1}], "samples": {"run": "cnn", "name": "val"}, "neuron": 1}
    response = served.post("suggestions", body)
    assert response.status_code == 400 and "neuron needs a layer" in body_of(response)["error"]


def test_bad_requests_start_no_worker(served):
    for body, status, _ in BAD_BODIES:  # again here: run alone, this test must still have sent every bad body
        assert served.post("attributions", body).status_code == status
    assert served.post("attributions", GOOD, headers={}).status_code == 403
    assert served.plugin.pool.stats["submitted"] == 0 and served.plugin.pool.stats["started"] == 0
