"""POST sanity, agreement and first_last, and the suggestions' evidence axis, through a real worker and the real engine."""

import os

import numpy as np
import pytest
import tensorflow as tf

from tb_xai_plugin import summary
from tb_xai_plugin.engine import agreement, sanity
from tb_xai_plugin.plugin import encoding
from tests.plugin.conftest import SCALE, Served, body_of, cnn_images, dense_model, tiny_cnn, write_run

CNN1, CNN2 = {"run": "cnn", "step": 1}, {"run": "cnn", "step": 2}
TWIN, NOISY, DENSE = {"run": "twin", "step": 1}, {"run": "noisy", "step": 1}, {"run": "dense", "step": 0}
RANDOM, RANDOM_SEED = {"run": "random", "step": 1}, 3
BINARY, BINARY_RANDOM = {"run": "binary", "step": 1}, {"run": "binary_random", "step": 1}
METHODS, TARGET = [{"id": "gradient"}, {"id": "grad_cam"}], {"kind": "class", "index": 0}
VAL = {"run": "cnn", "name": "val"}
INDICES = [0, 1, 2]
PIXELS = 28 * 28


def rank_tolerance(n=PIXELS):
    """|d rho| allowed between two float32 runs of the same maps: n swaps of adjacent ranks, each 12 / (n (n^2 - 1)) of rho."""
    return n * 12.0 / (n * (n * n - 1.0))


def noisy_cnn():
    """tiny_cnn(1) with its conv kernel perturbed by 20% noise: mostly the same predictions, other maps."""
    model = tiny_cnn(1)
    kernel, bias = model.get_layer("conv").get_weights()
    noise = np.random.default_rng(7).normal(0.0, 0.2 * np.abs(kernel).mean(), kernel.shape).astype(np.float32)
    model.get_layer("conv").set_weights([kernel + noise, bias])
    return model


def randomized(model, seed):
    """`model` with every weighted layer randomized as sanity's last stage does (engine.sanity.random_weights)."""
    for position, layer in enumerate(sanity.weighted_layers(model)[::-1]):
        layer.set_weights(sanity.random_weights(layer, position, seed))
    return model


def binary_cnn():
    """28x28x1 -> conv(4) -> global average pool -> dense(1, sigmoid): a binary head (two classes, p and 1 - p)."""
    tf.keras.utils.set_random_seed(4)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(tf.keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(1, activation="sigmoid", name="dense")(x))


def log_binary(root, run, model):
    """Log a binary-head model at step 1 of root/run."""
    with summary.create_file_writer(os.path.join(root, run)).as_default():
        assert summary.checkpoint(model, step=1, class_names=["no", "yes"], preprocessing=SCALE)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """cnn (tiny CNNs at steps 1, 2; samples 'val'), twin (cnn@1's weights), noisy (cnn@1 perturbed), dense (no conv),
    random (cnn@1 with every layer randomized), binary and binary_random (a binary head, and it randomized)."""
    root = str(tmp_path_factory.mktemp("logdir"))
    images, labels = cnn_images()
    write_run(root, "cnn", {1: tiny_cnn(1), 2: tiny_cnn(2)}, [("val", images, labels)], preprocessing=SCALE)
    write_run(root, "twin", {1: tiny_cnn(1)}, preprocessing=SCALE)
    write_run(root, "noisy", {1: noisy_cnn()}, preprocessing=SCALE)
    write_run(root, "dense", {0: dense_model([0.0, 1.0, 0.0], [0.0, 0.0, 1.5])})
    write_run(root, "random", {1: randomized(tiny_cnn(1), RANDOM_SEED)}, preprocessing=SCALE)
    log_binary(root, "binary", binary_cnn())
    log_binary(root, "binary_random", randomized(binary_cnn(), RANDOM_SEED))
    server = Served(root, str(tmp_path_factory.mktemp("cache")))
    yield server
    server.close()


def route_maps(served, models, methods, indices=INDICES, target=None):
    """{(run, step, method id): maps [n, H, W]} from POST attributions."""
    request = {"models": models, "samples": VAL, "indices": indices, "methods": methods, "target": target}
    body = body_of(served.post("attributions", request))
    return {(c["run"], c["step"], c["method"]): encoding.decode_float32(c) for c in body["cells"] if c["ok"]}


def sanity_body(**overrides):
    """A sanity request; its cells for cnn@1 are the same in every test that keeps the defaults (cached after the first)."""
    body = {"models": [CNN1, DENSE], "samples": VAL, "indices": INDICES, "methods": METHODS, "target": TARGET, "seed": RANDOM_SEED}
    body.update(overrides)
    return body


def test_sanity_at_full_randomization_is_the_agreement_with_the_randomized_model_logged_as_a_checkpoint(served):
    # Class 0 of the binary head is explained through its negated logit: a Dense copy that sanity must re-make too.
    methods, target = METHODS, TARGET
    response = served.post("sanity", sanity_body(models=[CNN1, BINARY]))
    assert response.status_code == 200, response.get_data(as_text=True)
    trained = route_maps(served, [CNN1, BINARY], methods, target=target)
    random = route_maps(served, [RANDOM, BINARY_RANDOM], methods, target=target)
    for cell in body_of(response)["cells"]:
        assert cell["ok"] and cell["stages"] == ["dense", "conv"] and cell["randomized"] == [1, 2], cell
        twin = "random" if cell["run"] == "cnn" else "binary_random"
        expected = agreement.rank_correlation(trained[(cell["run"], 1, cell["method"])], random[(twin, 1, cell["method"])])
        np.testing.assert_allclose(cell["correlations"][-1], expected, rtol=0, atol=rank_tolerance())


def test_sanity_cells_say_what_they_computed_and_why_a_cell_failed(served):
    response = served.post("sanity", sanity_body())
    assert response.status_code == 200, response.get_data(as_text=True)
    body = body_of(response)
    assert body["threshold"] == sanity.BADGE_THRESHOLD and body["correlation"] == "spearman_abs"
    assert body["indices"] == INDICES and body["randomization"] == "permute" and body["max_stages"] == 8
    cells = {(c["run"], c["method"]): c for c in body["cells"]}
    for method in ("gradient", "grad_cam"):
        cell = cells[("cnn", method)]
        assert cell["ok"] and cell["stages"] == ["dense", "conv"] and cell["randomized"] == [1, 2], cell
        got = np.asarray(cell["correlations"], dtype=np.float64)
        assert got.shape == (2, 3) and np.isfinite(got).all() and (np.abs(got) <= 1).all()
        assert cell["mean"] == pytest.approx(got.mean(axis=1).tolist(), abs=1e-12)
        assert cell["badge"] == (cell["mean"][0] >= body["threshold"])
    # The dense model's gradient is the same for every pixel (a constant map): rho is undefined, never a badge.
    assert cells[("dense", "gradient")]["correlations"] == [[None] * 3] and cells[("dense", "gradient")]["badge"] is False
    assert cells[("dense", "grad_cam")]["ok"] is False and "Grad-CAM" in cells[("dense", "grad_cam")]["error"]


def test_sanity_leaves_the_served_model_as_trained(served):
    assert served.post("sanity", sanity_body(models=[CNN1])).status_code == 200  # computed here when this test runs alone
    probs = body_of(served.post("predictions", {"models": [CNN1], "samples": VAL, "indices": [5], "top_k": 3}))["models"][0]
    expected = tiny_cnn(1).predict(cnn_images()[0][[5]] / np.float32(255), verbose=0)[0]
    assert probs["ok"] and probs["top_classes"][0][0] == int(expected.argmax())
    assert probs["top_scores"][0][0] == pytest.approx(float(expected.max()), rel=1e-5)


def test_a_repeated_sanity_request_reaches_no_worker(served):
    body = sanity_body(models=[CNN1], methods=[{"id": "gradient"}], indices=[4], max_stages=1)
    first = body_of(served.post("sanity", body))
    submitted = served.plugin.pool.stats["submitted"]
    assert body_of(served.post("sanity", body)) == first
    assert served.plugin.pool.stats["submitted"] == submitted
    assert first["cells"][0]["stages"] == ["conv"] and first["cells"][0]["randomized"] == [2]


def test_sanity_progress_counts_every_map_of_every_stage(served):
    body = sanity_body(models=[CNN2], methods=[{"id": "gradient"}], indices=[1, 2], max_stages=1, request_id="sanity-progress")
    assert served.post("sanity", body).status_code == 200
    progress = body_of(served.get("progress", request_id="sanity-progress"))
    assert progress["state"] == "done" and progress["done"] == progress["total"] == (1 + 1) * 1 * 2, progress


@pytest.mark.parametrize(
    "change",
    [{"indices": list(range(17))}, {"randomization": "shuffle"}, {"max_stages": 0}, {"max_stages": 65}, {"colour": 1},
     {"methods": [{"id": "no_such_method"}]}],
)  # fmt: skip
def test_bad_sanity_requests_are_400(served, change):
    response = served.post("sanity", sanity_body(**change))
    assert response.status_code == 400 and body_of(response)["error"]


def test_agreement_matrices_are_the_rank_correlations_of_the_routes_maps(served):
    methods = [{"id": "gradient"}, {"id": "input_t_gradient"}, {"id": "grad_cam"}]
    body = body_of(served.post("agreement", {"models": [CNN1, CNN2, DENSE], "samples": VAL, "indices": INDICES, "methods": methods}))
    maps = route_maps(served, [CNN1, CNN2, DENSE], methods)
    assert [(m["run"], m["step"]) for m in body["methods"]] == [("cnn", 1), ("cnn", 2), ("dense", 0)]
    assert [m["method"] for m in body["models"]] == ["gradient", "input_t_gradient", "grad_cam"]
    assert body["errors"] == [{"run": "dense", "step": 0, "method": "grad_cam", "error": body["errors"][0]["error"]}]
    cnn1 = np.asarray(body["methods"][0]["per_sample"], dtype=np.float64)  # [n, K, K]
    rho = agreement.rank_correlation(maps[("cnn", 1, "gradient")], maps[("cnn", 1, "grad_cam")])
    np.testing.assert_allclose(cnn1[:, 0, 2], rho, atol=rank_tolerance())
    np.testing.assert_allclose(cnn1[:, 2, 0], rho, atol=rank_tolerance())
    np.testing.assert_allclose(np.diagonal(cnn1, axis1=1, axis2=2), 1.0, atol=rank_tolerance())
    assert body["methods"][0]["matrix"][0][2] == pytest.approx(float(rho.mean()), abs=rank_tolerance())
    ixg = np.asarray(body["models"][1]["per_sample"], dtype=np.float64)  # [n, M, M]
    rho = agreement.rank_correlation(maps[("cnn", 1, "input_t_gradient")], maps[("cnn", 2, "input_t_gradient")])
    np.testing.assert_allclose(ixg[:, 0, 1], rho, atol=rank_tolerance())
    cam = body["models"][2]["matrix"]  # the dense model's grad_cam failed: its row and column are null
    assert cam[2] == [None, None, None] and [row[2] for row in cam] == [None, None, None] and cam[0][1] is not None


def test_first_last_compares_each_runs_first_and_last_checkpoint(served):
    response = served.post("first_last", {"runs": ["cnn", "twin"], "samples": VAL, "indices": INDICES, "methods": [{"id": "gradient"}]})
    assert response.status_code == 200, response.get_data(as_text=True)
    cells = body_of(response)["cells"]
    maps = route_maps(served, [CNN1, CNN2], [{"id": "gradient"}])
    rho = agreement.rank_correlation(maps[("cnn", 1, "gradient")], maps[("cnn", 2, "gradient")])
    assert cells[0]["run"] == "cnn" and (cells[0]["first"], cells[0]["last"]) == (1, 2) and cells[0]["ok"]
    np.testing.assert_allclose(cells[0]["correlations"], rho, atol=rank_tolerance())
    assert cells[1] == {"run": "twin", "first": 1, "last": 1, "method": "gradient", "ok": False,
                        "error": "run 'twin' has one checkpoint (step 1): nothing to compare"}  # fmt: skip


@pytest.mark.parametrize("body", [{"runs": []}, {"runs": ["cnn", "cnn"]}, {"runs": ["../x"]}, {"runs": "cnn"}])
def test_bad_first_last_requests_are_400(served, body):
    response = served.post("first_last", dict({"samples": VAL, "indices": [0], "methods": [{"id": "gradient"}]}, **body))
    assert response.status_code == 400 and body_of(response)["error"]


def test_evidence_axis_is_one_minus_the_models_map_agreement_where_they_agree(served):
    plain = body_of(served.post("suggestions", {"models": [CNN1, NOISY], "samples": VAL}))
    assert "evidence" not in plain and "evidence_disagreement" not in plain["per_sample"]
    body = body_of(served.post("suggestions", {"models": [CNN1, NOISY, TWIN], "samples": VAL, "evidence": True}))
    predicted = np.asarray([m["predicted"] for m in body["per_model"]])
    agreeing = np.flatnonzero((predicted == predicted[0]).all(axis=0)).tolist()
    assert agreeing, "the perturbed twin should agree with the original on some samples"
    assert body["evidence"] == {"method": "gradient", "params": {"postprocess": "abs"}, "max_samples": 64,
                                "covered": len(agreeing), "indices": agreeing, "agreeing": len(agreeing)}  # fmt: skip
    maps = route_maps(served, [CNN1, NOISY, TWIN], [{"id": "gradient"}], indices=agreeing)
    a, b, c = (maps[(m["run"], 1, "gradient")] for m in (CNN1, NOISY, TWIN))
    rho = [agreement.rank_correlation(x, y) for x, y in ((a, b), (a, c), (b, c))]
    expected = 1.0 - np.mean(rho, axis=0)
    values = body["per_sample"]["evidence_disagreement"]
    assert [i for i, v in enumerate(values) if v is not None] == agreeing
    np.testing.assert_allclose([values[i] for i in agreeing], expected, atol=rank_tolerance())


def test_evidence_covers_at_most_max_samples_evenly_spaced(served):
    body = body_of(served.post("suggestions", {"models": [CNN1, TWIN], "samples": VAL, "evidence": {"max_samples": 2}}))
    assert body["evidence"]["agreeing"] == 6 and body["evidence"]["indices"] == [0, 3]
    values = body["per_sample"]["evidence_disagreement"]
    assert values[0] == pytest.approx(0.0, abs=rank_tolerance()) and values[3] == pytest.approx(0.0, abs=rank_tolerance())
    assert [v for i, v in enumerate(values) if i not in (0, 3)] == [None] * 4


@pytest.mark.parametrize("evidence", [{"method": "nope"}, {"max_samples": 0}, {"max_samples": 257}, {"size": 3}, 1])
def test_bad_evidence_requests_are_400(served, evidence):
    response = served.post("suggestions", {"models": [CNN1], "samples": VAL, "evidence": evidence})
    assert response.status_code == 400 and "evidence" in body_of(response)["error"]
