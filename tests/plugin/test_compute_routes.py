"""POST predictions / attributions / suggestions through real worker processes and the real engine."""

import concurrent.futures
import math
import time

import numpy as np
import pytest

from tb_xai_plugin.plugin import encoding
from tests.plugin.conftest import CONST_LABELS, CONST_VALUES, DENSE_MODELS, Served, body_of, cnn_images, tiny_cnn

CNN = {"run": "cnn", "step": 1}
VAL = {"run": "cnn", "name": "val"}


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def hand_probs(run):
    """Probabilities of dense model `run` on the constant images: softmax(v * w + b)."""
    w, b = DENSE_MODELS[run]
    return softmax(CONST_VALUES[:, None] * np.asarray(w) + np.asarray(b))


def attributions_body(**overrides):
    body = {"models": [CNN], "samples": VAL, "indices": [0, 3], "methods": [{"id": "grad_cam", "params": {}}]}
    body.update(overrides)
    return body


def test_predictions_match_the_keras_model(served):
    response = served.post("predictions", {"models": [CNN, {"run": "cnn", "step": 2}], "samples": VAL, "top_k": 2})
    assert response.status_code == 200, response.get_data(as_text=True)
    body = body_of(response)
    images, labels = cnn_images()
    assert body["indices"] == list(range(6)) and body["labels"] == labels.tolist()
    for entry, seed in zip(body["models"], (1, 2)):
        expected = tiny_cnn(seed).predict(images / np.float32(255), verbose=0)
        assert entry["ok"] is True, entry
        np.testing.assert_array_equal(np.asarray(entry["top_classes"])[:, 0], expected.argmax(axis=1))
        np.testing.assert_allclose(np.asarray(entry["top_scores"])[:, 0], expected.max(axis=1), rtol=1e-5)


def test_attributions_of_several_method_families(served):
    methods = ["grad_cam", "occlusion", "gradient", "lrp.epsilon"]
    body = attributions_body(methods=[{"id": m} for m in methods[:1]] + [
        {"id": "occlusion", "params": {"window": 7}}] + [{"id": m} for m in methods[2:]])  # fmt: skip
    response = served.post("attributions", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    cells = body_of(response)["cells"]
    assert [(c["method"], c["ok"]) for c in cells] == [(m, True) for m in methods], cells
    for cell in cells:
        maps = encoding.decode_float32(cell)
        assert maps.shape == (2, 28, 28) and np.isfinite(maps).all() and np.abs(maps).max() > 0
        assert cell["range"] == [pytest.approx(float(maps.min())), pytest.approx(float(maps.max()))]
    images, _ = cnn_images()
    probs = tiny_cnn(1).predict(images[[0, 3]] / np.float32(255), verbose=0)
    assert cells[0]["targets"] == probs.argmax(axis=1).tolist()
    np.testing.assert_allclose(cells[0]["scores"], probs.max(axis=1), rtol=1e-5)


def test_a_repeated_request_is_served_from_the_cache(served):
    body = attributions_body(indices=[1, 2], methods=[{"id": "occlusion", "params": {"window": 7}}], target={"kind": "label"})
    first = served.post("attributions", body)
    submitted = served.plugin.pool.stats["submitted"]
    second = served.post("attributions", body)
    assert second.status_code == 200 and served.plugin.pool.stats["submitted"] == submitted
    assert body_of(first) == body_of(second)
    # A subset of cached samples is served from the cache too; a new index is computed alone.
    subset = served.post("attributions", dict(body, indices=[2]))
    assert served.plugin.pool.stats["submitted"] == submitted
    # a layer, neuron or seed that the method does not use does not make a new key
    assert served.post("attributions", dict(body, layer="pool", neuron=1, seed=5)).status_code == 200
    assert served.plugin.pool.stats["submitted"] == submitted
    assert encoding.decode_float32(body_of(subset)["cells"][0])[0].tolist() == encoding.decode_float32(
        body_of(first)["cells"][0])[1].tolist()  # fmt: skip


def test_a_restarted_server_reads_the_disk_cache(served, logdir):
    body = attributions_body(indices=[4], methods=[{"id": "occlusion", "params": {"window": 14}}])
    first = body_of(served.post("attributions", body))
    served.plugin.cache.flush()
    fresh = Served(logdir, served.plugin.cache.directory)
    try:
        again = fresh.post("attributions", body)
        assert again.status_code == 200 and body_of(again) == first
        assert fresh.plugin.pool.stats["submitted"] == 0 and fresh.plugin.pool.stats["started"] == 0
    finally:
        fresh.close()


def test_identical_requests_in_flight_are_computed_once(served):
    body = attributions_body(indices=[5], methods=[{"id": "occlusion", "params": {"window": 2, "stride": 1}}])
    before, hits = dict(served.plugin.pool.stats), served.plugin.cache.stats["memory_hits"]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        responses = list(pool.map(lambda _: served.post("attributions", body), range(3)))
    assert [r.status_code for r in responses] == [200] * 3
    assert body_of(responses[0]) == body_of(responses[1]) == body_of(responses[2])
    stats = served.plugin.pool.stats
    assert stats["submitted"] - before["submitted"] == 1
    # the other two either merged with the task in flight or came late and hit the cache
    assert stats["merged"] - before["merged"] + served.plugin.cache.stats["memory_hits"] - hits == 2


def test_a_method_that_does_not_apply_fails_only_its_cell(served):
    body = {
        "models": [{"run": "a", "step": 0}, {"run": "b", "step": 0}],
        "samples": {"run": "a", "name": "const"},
        "indices": [0],
        "methods": [{"id": "grad_cam"}, {"id": "occlusion", "params": {"window": 14}}],
    }
    cells = body_of(served.post("attributions", body))["cells"]
    assert [(c["run"], c["method"], c["ok"]) for c in cells] == [
        ("a", "grad_cam", False), ("a", "occlusion", True), ("b", "grad_cam", False), ("b", "occlusion", True)]  # fmt: skip
    assert "convolutional" in cells[0]["error"] or "spatial" in cells[0]["error"]


def test_a_class_target_beyond_the_model_fails_its_cells(served):
    cells = body_of(served.post("attributions", attributions_body(target={"kind": "class", "index": 3})))["cells"]
    assert cells[0]["ok"] is False and "out of range" in cells[0]["error"]


def test_suggestions_match_a_hand_computation(served):
    body = {
        "models": [{"run": r, "step": 0} for r in ("a", "b", "c")],
        "samples": {"run": "a", "name": "const"},
        "layer": "flatten",
        "request_id": "sugg-1",
    }
    response = served.post("suggestions", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    out = body_of(response)
    probs = {run: hand_probs(run) for run in ("a", "b", "c")}
    assert out["count"] == 4 and out["labels"] == CONST_LABELS.tolist()
    # by hand from the weights: a always says 0; b says 2,1,1,1; c says 0,0,2,2
    assert [m["predicted"] for m in out["per_model"]] == [[0, 0, 0, 0], [2, 1, 1, 1], [0, 0, 2, 2]]
    for entry, run in zip(out["per_model"], ("a", "b", "c")):
        np.testing.assert_allclose(entry["top_score"], probs[run].max(axis=1), rtol=1e-5)
        np.testing.assert_allclose(entry["p_true"], probs[run][np.arange(4), CONST_LABELS], rtol=1e-5)
    per_sample = out["per_sample"]
    assert per_sample["distinct_classes"] == [2, 2, 3, 3]
    assert per_sample["majority_right"] == [True, False, False, False]
    for i in range(4):
        mean_top = sum(probs[r][i].max() for r in probs) / 3
        mean = [sum(probs[r][i][k] for r in probs) / 3 for k in range(3)]
        entropy = -sum(p * math.log(p) for p in mean)
        assert per_sample["mean_top_score"][i] == pytest.approx(mean_top, rel=1e-5)
        assert per_sample["entropy"][i] == pytest.approx(entropy, rel=1e-5)
    # the flatten layer's mean activation is the constant pixel value
    assert out["activation"]["ok"] is True and out["activation"]["layer"] == "flatten"
    np.testing.assert_allclose(out["activation"]["mean"], CONST_VALUES, rtol=1e-6)
    assert body_of(served.get("progress", request_id="sugg-1"))["state"] == "done"
    # predictions reuse the whole-set probabilities cached by suggestions
    submitted = served.plugin.pool.stats["submitted"]
    preds = body_of(served.post("predictions", {"models": body["models"], "samples": body["samples"], "indices": [2]}))
    assert served.plugin.pool.stats["submitted"] == submitted
    assert preds["models"][1]["top_classes"][0][0] == 1


def test_progress_reports_a_finished_request(served):
    body = attributions_body(indices=[0, 1, 2], methods=[{"id": "occlusion", "params": {"window": 4}}], request_id="p-1")
    assert served.post("attributions", body).status_code == 200
    progress = body_of(served.get("progress", request_id="p-1"))
    assert progress["state"] == "done" and progress["done"] == progress["total"] == 3


def test_a_cancelled_request_answers_409(served):
    assert body_of(served.post("cancel", {"request_id": "c-1"})) == {"cancelled": True}
    body = attributions_body(indices=[0, 1], methods=[{"id": "occlusion", "params": {"window": 3}}], request_id="c-1")
    response = served.post("attributions", body)
    assert response.status_code == 409 and body_of(response) == {"error": "cancelled"}
    assert body_of(served.get("progress", request_id="c-1"))["state"] == "cancelled"


def test_cancel_while_running_answers_409_and_the_worker_goes_on(served):
    body = attributions_body(
        samples={"run": "cnn", "name": "big"}, indices=list(range(64)), request_id="c-2",
        methods=[{"id": "occlusion", "params": {"window": 1, "stride": 1}}],
    )  # fmt: skip
    served.post("predictions", {"models": [CNN], "samples": VAL, "indices": [0]})  # a warm worker
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        pending = executor.submit(served.post, "attributions", body)
        deadline = time.monotonic() + 60
        while not served.plugin.pool.busy_pids() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert body_of(served.get("progress", request_id="c-2"))["state"] == "running"
        assert body_of(served.post("cancel", {"request_id": "c-2"})) == {"cancelled": True}
        response = pending.result(timeout=60)
    assert response.status_code == 409 and body_of(response)["error"] == "cancelled"
    assert body_of(served.get("progress", request_id="c-2"))["state"] == "cancelled"
    after = served.post("attributions", attributions_body(indices=[1]))
    assert after.status_code == 200 and body_of(after)["cells"][0]["ok"] is True
