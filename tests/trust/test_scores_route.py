"""POST scores through a real worker: the curves are the engine's on the route's own maps, cached, validated."""

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tb_xai_plugin import files, metadata
from tb_xai_plugin.engine import backends, faithfulness
from tb_xai_plugin.plugin import encoding
from tests.engine.float32_error import EPS
from tests.plugin.conftest import Served, body_of, build_logdir, checkpoint_file, cnn_images
from tests.reliability.test_hostile_input import ALLOWED_STATUS, ATTRIBUTIONS, FUZZ, body_strategy, json_leaf, json_value

CNN = {"run": "cnn", "step": 1}
VAL = {"run": "cnn", "name": "val"}
METHODS = [{"id": "gradient"}, {"id": "occlusion", "params": {"window": 7}}]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The plugin tests' logdir (tiny CNNs, dense models) behind one plugin and its worker."""
    server = Served(build_logdir(str(tmp_path_factory.mktemp("logdir"))), str(tmp_path_factory.mktemp("cache")))
    yield server
    server.close()


def scores_body(**overrides):
    body = {"models": [CNN], "samples": VAL, "indices": [0, 3], "methods": METHODS, "steps": 8}
    body.update(overrides)
    return body


def cnn_probability_tolerance(keras_weights, images):
    """|dp| between two float32 runs of tiny_cnn (conv 3x3 valid -> mean -> dense softmax): 4 dz + 8 eps, dz the
    first-order logit bound eps (sum of accumulation lengths) max A(x), A the network with |W| on |x| (float32_error)."""
    kernel, bias, dense, dense_bias = (np.abs(w).astype(np.float64) for w in keras_weights)
    windows = np.lib.stride_tricks.sliding_window_view(np.abs(images.astype(np.float64)), (3, 3), axis=(1, 2))
    hidden = np.einsum("nhwcij,ijco->nhwo", windows, kernel) + bias
    logits = hidden.mean(axis=(1, 2)) @ dense + dense_bias
    lengths = (9 + 1) + (hidden.shape[1] * hidden.shape[2] + 1) + (dense.shape[0] + 1)
    return 4 * EPS * lengths * logits.max() + 8 * EPS


def trapezoid(curves, dx):
    """Per row, the trapezoid rule's area: sum over segments of dx (c_k + c_k+1) / 2 (numpy 1.26 has no np.trapezoid)."""
    curves = np.asarray(curves)
    return (dx * (curves[:, :-1] + curves[:, 1:]) / 2).sum(axis=1)


def test_the_curves_are_the_engines_on_the_routes_own_maps(served):
    response = served.post("scores", scores_body())
    assert response.status_code == 200, response.get_data(as_text=True)
    body = body_of(response)
    assert body["indices"] == [0, 3] and body["fractions"] == [k / 8 for k in range(9)]
    assert body["params"] == {"metrics": ["deletion", "insertion", "morf", "lerf"], "fill": "mean", "steps": 8, "region": 4, "seed": 0}
    maps_body = body_of(served.post("attributions", {k: v for k, v in scores_body().items() if k != "steps"}))
    manifest = files.checkpoint_manifests(served.logdir + "/cnn")[0]
    model = backends.load_checkpoint(checkpoint_file(served.logdir + "/cnn", 1), manifest)
    images = cnn_images()[0][[0, 3]]
    import tensorflow as tf

    weights = [v.numpy() for v in tf.keras.models.load_model(checkpoint_file(served.logdir + "/cnn", 1)).weights]
    tol = cnn_probability_tolerance(weights, model.preprocess(images))
    for cell, maps_cell in zip(body["cells"], maps_body["cells"]):
        assert cell["ok"] and maps_cell["ok"] and cell["targets"] == maps_cell["targets"], cell
        expected = faithfulness.score_maps(model, images, cell["targets"], {"m": encoding.decode_float32(maps_cell)},
                                           metrics=list(faithfulness.METRICS), fill="mean", steps=8, region=4, seed=0)  # fmt: skip
        for name, metric in faithfulness.METRICS.items():
            entry = cell["scores"][name]
            assert entry["better"] == metric.better
            np.testing.assert_allclose(entry["curves"], expected["maps"]["m"][name], rtol=0, atol=tol)
            np.testing.assert_allclose(entry["random_curves"], expected["random"][name], rtol=0, atol=tol)
            np.testing.assert_allclose(entry["auc"], trapezoid(entry["curves"], 1 / 8), rtol=1e-12)
            np.testing.assert_allclose(entry["random_auc"], trapezoid(entry["random_curves"], 1 / 8), rtol=1e-12)
            assert ("aopc" in entry) == metric.regions
        unaltered = np.array(cell["scores"]["deletion"]["curves"])[:, 0]
        np.testing.assert_allclose(unaltered, maps_cell["scores"], rtol=0, atol=tol)
        np.testing.assert_allclose(np.array(cell["scores"]["insertion"]["curves"])[:, -1], unaltered, rtol=0, atol=tol)


def test_a_repeated_request_and_maps_asked_before_reach_no_worker_again(served):
    first = served.post("scores", scores_body(metrics=["deletion"], fill="zero"))
    submitted = served.plugin.pool.stats["submitted"]
    again = served.post("scores", scores_body(metrics=["deletion"], fill="zero"))
    assert again.status_code == 200 and body_of(again) == body_of(first)
    assert served.plugin.pool.stats["submitted"] == submitted
    maps = {"models": [CNN], "samples": VAL, "indices": [5], "methods": [{"id": "gradient", "params": {"postprocess": "none"}}]}
    assert served.post("attributions", maps).status_code == 200
    submitted = served.plugin.pool.stats["submitted"]
    assert served.post("scores", dict(maps, metrics=["lerf"], region=7)).status_code == 200
    assert served.plugin.pool.stats["submitted"] == submitted + 1, "the map was computed again instead of read from the cache"


def test_a_cell_that_cannot_be_scored_says_why_and_the_others_answer(served):
    body = scores_body(models=[CNN, {"run": "a", "step": 0}], samples=VAL, methods=[{"id": "grad_cam"}], metrics=["morf"])
    cells = body_of(served.post("scores", body))["cells"]
    assert [c["ok"] for c in cells] == [True, False] and "convolution" in cells[1]["error"], cells
    too_big = body_of(served.post("scores", scores_body(metrics=["morf"], region=29, methods=[{"id": "gradient"}])))["cells"]
    assert too_big[0]["ok"] is False and "region 29 is larger than the image" in too_big[0]["error"]
    overflow = body_of(served.post("scores", scores_body(metrics=["deletion"], fill=3e38, methods=[{"id": "gradient"}])))["cells"]
    assert overflow[0]["ok"] is False and "not finite" in overflow[0]["error"], overflow


def test_progress_counts_the_maps_and_the_curves(served):
    response = served.post("scores", scores_body(indices=[1, 2], request_id="scores-progress", metrics=["insertion"]))
    assert response.status_code == 200
    progress = body_of(served.get("progress", request_id="scores-progress"))
    assert progress["state"] == "done" and progress["done"] == progress["total"] > 2 * 2, progress


def test_a_cancelled_request_id_stops_the_scores_with_409(served):
    assert body_of(served.post("cancel", {"request_id": "scores-cancelled"})) == {"cancelled": True}
    response = served.post("scores", scores_body(indices=[5], fill="blur", request_id="scores-cancelled"))
    assert response.status_code == 409 and body_of(response)["error"] == "cancelled"


def test_the_methods_of_a_model_share_its_random_curves_across_requests(served):
    totals, random = [], []
    for n, method in enumerate([{"id": "gradient", "params": {"postprocess": "square"}}, {"id": "occlusion", "params": {"window": 5}}]):
        body = scores_body(indices=[2, 4], methods=[method], metrics=["deletion"], steps=4, request_id="shared-random-%d" % n)
        response = served.post("scores", body)
        assert response.status_code == 200, response.get_data(as_text=True)
        random.append(body_of(response)["cells"][0]["scores"]["deletion"]["random_curves"])
        totals.append(body_of(served.get("progress", request_id=body["request_id"]))["total"])
    assert random[0] == random[1]
    assert totals[0] - totals[1] == 2 * 5, "the second request computed the random curves again: %s" % totals


@pytest.mark.parametrize(
    "change",
    [{"metrics": ["roar"]}, {"metrics": []}, {"metrics": "deletion"}, {"metrics": ["deletion", "deletion"]}, {"fill": "purple"},
     {"fill": None}, {"fill": True}, {"steps": 0}, {"steps": 8.0}, {"steps": "8"}, {"steps": 257}, {"region": 0},
     {"region": 65}, {"indices": list(range(65))}, {"colour": 1}],
)  # fmt: skip
def test_bad_scores_requests_are_400_with_a_message(served, change):
    response = served.post("scores", scores_body(**change))
    assert response.status_code == 400 and body_of(response)["error"], response.get_data(as_text=True)


@pytest.mark.parametrize("headers", [{}, {"X-XAI-Request": "0"}, {"X-XAI-Request": "1", "Origin": "http://evil.example"}])
def test_scores_refuse_cross_site_requests_before_any_work(served, headers):
    submitted = served.plugin.pool.stats["submitted"]
    assert served.post("scores", scores_body(indices=[4], fill="blur"), headers=headers).status_code == 403
    assert served.plugin.pool.stats["submitted"] == submitted


SCORE_FIELDS = dict(
    ATTRIBUTIONS,
    metrics=st.lists(st.sampled_from(["deletion", "insertion", "morf", "lerf", "roar"]) | json_leaf, max_size=5) | json_value,
    fill=st.sampled_from(["mean", "zero", "blur", 0.5, 3e38, -3.4e38, 1e39]) | json_leaf,
    steps=st.integers(-5, 300) | json_leaf,
    region=st.integers(-2, 70) | json_leaf,
)


@FUZZ
@given(body=body_strategy(dict(scores_body(methods=[{"id": "gradient"}], indices=[0], steps=2)), SCORE_FIELDS))
def test_scores_fuzz(served, body):
    response = served.post("scores", body)
    assert response.status_code in ALLOWED_STATUS, (response.status_code, response.get_data()[:300])
    answer = json.loads(response.get_data(), parse_constant=lambda name: pytest.fail("the answer holds %s" % name))
    assert response.status_code == 200 or answer["error"]
    assert b'"NaN"' not in response.get_data() and b'Infinity"' not in response.get_data(), "TensorBoard writes NaN as a string"
