"""The Table 2 methods (PatternNet, PatternAttribution, DeepLIFT, LIME, Shapley sampling, prediction difference)
through the real plugin and its worker: offered, computed, seeded, and their bad parameters answered with 400."""

import numpy as np

from tb_xai_plugin.plugin import encoding
from tests.plugin.conftest import body_of

CNN = {"run": "cnn", "step": 1}
VAL = {"run": "cnn", "name": "val"}
METHODS = [
    {"id": "pattern.net"},
    {"id": "pattern.attribution"},
    {"id": "deeplift", "params": {"reference": "blur"}},
    {"id": "lime", "params": {"samples": 40, "segments": 16}},
    {"id": "shapley_sampling", "params": {"permutations": 2, "segmentation": "grid", "segments": 16}},
    {"id": "prediction_difference", "params": {"window": 7, "stride": 7, "samples": 2}},
]
SAMPLING = ("lime", "shapley_sampling", "prediction_difference")


def post_maps(served, seed):
    """{method id: maps [2, 28, 28]} of one attributions request over all six methods."""
    body = {"models": [CNN], "samples": VAL, "indices": [0, 3], "methods": METHODS, "seed": seed}
    response = served.post("attributions", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    cells = body_of(response)["cells"]
    assert [(c["method"], c["ok"]) for c in cells] == [(m["id"], True) for m in METHODS], cells
    return {cell["method"]: encoding.decode_float32(cell) for cell in cells}


def test_offered_for_the_models_they_apply_to(served):
    listed = {m["id"]: m for m in body_of(served.get("methods"))["methods"]}
    assert {m["id"] for m in METHODS} <= set(listed)
    assert all(listed[m]["sampling"] for m in SAMPLING) and not listed["deeplift"]["sampling"]
    methods = body_of(served.post("applicability", {"run": "cnn", "step": 1}))["methods"]
    assert all(methods[m["id"]]["ok"] is True for m in METHODS), methods


def test_computed_by_the_worker_and_seeded(served):
    first = post_maps(served, seed=5)
    for method_id, maps in first.items():
        assert maps.shape == (2, 28, 28) and np.isfinite(maps).all() and np.abs(maps).max() > 0, method_id
    again = post_maps(served, seed=5)
    other = post_maps(served, seed=6)
    for method_id in first:
        np.testing.assert_array_equal(again[method_id], first[method_id])
        assert np.array_equal(other[method_id], first[method_id]) == (method_id not in SAMPLING), method_id


def test_bad_parameters_are_answered_with_400(served):
    for method, message in (
        ({"id": "lime", "params": {"samples": 1}}, "samples"),
        ({"id": "shapley_sampling", "params": {"permutations": 0}}, "permutations"),
        ({"id": "prediction_difference", "params": {"sampling": "exact"}}, "sampling"),
        ({"id": "deeplift", "params": {"reference": "mean_of_batch"}}, "reference"),
        ({"id": "pattern.net", "params": {"estimator": "two"}}, "estimator"),
    ):
        response = served.post("attributions", {"models": [CNN], "samples": VAL, "indices": [0], "methods": [method]})
        assert response.status_code == 400 and message in body_of(response)["error"], response.get_data(as_text=True)
