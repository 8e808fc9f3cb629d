"""Every head kind logged with the callback and asked over HTTP from one real `tensorboard` (this stack's backend).

binary: two classes with p and 1 - p, the negative class explained through the negated logit;
multi-label: a sigmoid per label, each label its own target, perturbation maps of a saturated label not
constant; logits: softmax for the probabilities; the picker answers per model from the loaded model.
"""

import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from tb_xai_plugin.keras import XaiCallback
from tb_xai_plugin.plugin import encoding
from tests.conftest import STACK, free_port
from tests.engine.float32_error import EPS, network_logit_error
from tests.heads.conftest import EXPECTED_HEAD, HEADS, SATURATED_LOGIT, SCALE, head_model, logits_of, samples
from tests.plugin.test_tensorboard_cli import TENSORBOARD, fetch, wait_for_xai

POST = {"X-XAI-Request": "1"}
# The Keras 2 stack logs the heads whose explanation its backend does its own way (binary's doubled Dense in the
# graph, sigmoid scores); Keras 3 logs every kind (time budget).
LOGGED = sorted(HEADS) if STACK == "keras3" else ["binary", "multilabel"]
keras3_only = pytest.mark.stack("keras3")
PERTURBATION = ("occlusion", "prediction_difference", "shapley_sampling")


def train_and_log(logdir, run):
    """The run's model fitted one epoch (learning rate 0: weights as built) with the callback; (model, images)."""
    units, activation, names, loss = HEADS[run]
    model = head_model(units, activation, name=run)
    if run == "multilabel":
        kernel, bias = model.get_layer("head").get_weights()
        model.get_layer("head").set_weights([kernel, np.array([SATURATED_LOGIT, 0.0, -3.0], np.float32)])
    images, labels = samples()
    targets = np.eye(units, dtype=np.float32)[labels] if run == "multilabel" else labels
    model.compile(optimizer=tf.keras.optimizers.SGD(0.0), loss=loss)
    callback = XaiCallback(os.path.join(logdir, run), samples=(images, labels), class_names=names, preprocessing=SCALE)
    model.fit(images.astype(np.float32) / 255.0, targets, epochs=1, verbose=0, callbacks=[callback])
    return model, images


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base URL of the plugin, {run: (keras model, images)}): one tensorboard for the module."""
    root = tmp_path_factory.mktemp("heads")
    logdir = str(root / "logs")
    models = {run: train_and_log(logdir, run) for run in LOGGED}
    port = free_port()
    command = [TENSORBOARD, "--logdir", logdir, "--host", "127.0.0.1", "--port", str(port), "--load_fast", "false",
               "--reload_interval", "1", "--xai_cache_dir", str(root / "cache")]  # fmt: skip
    with open(root / "tensorboard.log", "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = "http://127.0.0.1:%d" % port
            wait_for_xai(base, process)
            yield base + "/data/plugin/xai/", models
        finally:
            process.terminate()
            process.wait(30)


def post(served, route, body):
    """The JSON answer of a POST route; fails the test unless 200."""
    status, answer = fetch(served[0] + route, body, POST)
    assert status == 200, answer
    return answer


def maps(served, run, method, target, indices=(0, 1)):
    """(maps float32 [n, 16, 16], scores [n]) of one method on the run's samples for `target`."""
    body = {
        "models": [{"run": run, "step": 1}], "samples": {"run": run, "name": "validation"}, "indices": list(indices),
        "methods": [{"id": method}], "target": target,
    }  # fmt: skip
    (cell,) = post(served, "attributions", body)["cells"]
    assert cell["ok"], cell
    return encoding.decode_float32(cell), np.asarray(cell["scores"], np.float64)


def probability_bound(model, images):
    """|dp| <= |dz| / 4 per logit (sigmoid' and softmax' <= 1/4), summed over two evaluations of the logits."""
    x = images.astype(np.float32) / 255.0
    return 2 * network_logit_error(model, [w.numpy() for w in model.weights], x) / 4 + 4 * EPS


def test_runs_list_each_head_kind(served):
    status, body = fetch(served[0] + "runs")
    heads = {run["run"]: run["checkpoints"][0]["head"] for run in body["runs"]}
    assert status == 200 and heads == {run: EXPECTED_HEAD[run] for run in LOGGED}
    classes = {run["run"]: run["checkpoints"][0]["num_classes"] for run in body["runs"]}
    assert classes["binary"] == 2 and classes["multilabel"] == 3


@pytest.mark.parametrize("run", ["binary", pytest.param("binary_logit", marks=keras3_only)])
def test_binary_shows_two_classes_with_p_and_one_minus_p(served, run):
    model, images = served[1][run]
    answer = post(served, "predictions", {"models": [{"run": run, "step": 1}], "samples": {"run": run, "name": "validation"},
                                          "indices": [0, 1, 2, 3], "top_k": 2})  # fmt: skip
    (entry,) = answer["models"]
    p = 1.0 / (1.0 + np.exp(-logits_of(model, images)[:, 0]))  # sigmoid(z): class 1, "dog"
    shown = np.zeros((4, 2))
    for row, (classes, scores) in enumerate(zip(entry["top_classes"], entry["top_scores"])):
        shown[row, classes] = scores
    np.testing.assert_allclose(shown, np.stack([1 - p, p], axis=1), rtol=0, atol=probability_bound(model, images))


@pytest.mark.parametrize("method", ["input_t_gradient", "lrp.epsilon", "occlusion"])
def test_binary_negative_class_is_explained_through_the_negated_logit(served, method):
    negative, p_negative = maps(served, "binary", method, {"kind": "class", "index": 0})
    positive, p_positive = maps(served, "binary", method, {"kind": "class", "index": 1})
    assert np.abs(positive).max() > 0
    # z and -z come from the same products (a negated kernel is exact): only the occlusion's p vs 1 - p rounds.
    bound = 4 * EPS * max(1.0, np.abs(positive).max()) if method == "occlusion" else 0.0
    np.testing.assert_allclose(negative, -positive, rtol=0, atol=bound)
    np.testing.assert_allclose(p_negative + p_positive, 1.0, rtol=0, atol=4 * EPS)


def test_binary_positive_class_explains_the_pre_sigmoid_logit(served):
    model, images = served[1]["binary"]
    x = tf.constant(images[:2].astype(np.float32) / 255.0)
    features = tf.keras.Model(model.input, model.get_layer("head").input)
    kernel, bias = model.get_layer("head").get_weights()
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = tf.reduce_sum(features(x) @ kernel + bias)
    expected = (tape.gradient(z, x) * x).numpy().sum(axis=-1)
    shown, _ = maps(served, "binary", "input_t_gradient", {"kind": "class", "index": 1})
    np.testing.assert_allclose(shown, expected, rtol=0, atol=1e3 * EPS * np.abs(expected).max())


def test_multilabel_each_label_is_its_own_sigmoid_target(served):
    model, images = served[1]["multilabel"]
    answer = post(served, "predictions", {"models": [{"run": "multilabel", "step": 1}],
                                          "samples": {"run": "multilabel", "name": "validation"}, "indices": [0, 1], "top_k": 3})  # fmt: skip
    (entry,) = answer["models"]
    p = 1.0 / (1.0 + np.exp(-logits_of(model, images[:2])))
    for row in range(2):
        np.testing.assert_allclose(entry["top_scores"][row], p[row, entry["top_classes"][row]], rtol=0, atol=probability_bound(model, images))
        assert sum(entry["top_scores"][row]) > 1.2  # no softmax across labels: the three probabilities do not sum to 1
    for label in (1, 2):
        _, scores = maps(served, "multilabel", "gradient", {"kind": "class", "index": label})
        np.testing.assert_allclose(scores, p[:, label], rtol=0, atol=probability_bound(model, images))


@pytest.mark.parametrize("method", PERTURBATION)
def test_multilabel_perturbation_maps_of_a_saturated_label_are_not_constant(served, method):
    model, images = served[1]["multilabel"]
    assert logits_of(model, images[:2])[:, 0].min() > 17  # float32 sigmoid gives exactly 1.0 here
    found, scores = maps(served, "multilabel", method, {"kind": "class", "index": 0})
    assert np.all(scores == 1.0)
    assert all(np.isfinite(m).all() and m.max() > m.min() for m in found), [float(m.max() - m.min()) for m in found]


@keras3_only
def test_logits_head_probabilities_are_the_softmax(served):
    model, images = served[1]["logits"]
    answer = post(served, "predictions", {"models": [{"run": "logits", "step": 1}],
                                          "samples": {"run": "logits", "name": "validation"}, "indices": [0, 1], "top_k": 3})  # fmt: skip
    z = logits_of(model, images[:2])
    softmax = np.exp(z - z.max(axis=1, keepdims=True))
    softmax /= softmax.sum(axis=1, keepdims=True)
    for row, (classes, scores) in enumerate(zip(answer["models"][0]["top_classes"], answer["models"][0]["top_scores"])):
        np.testing.assert_allclose(scores, softmax[row, classes], rtol=0, atol=probability_bound(model, images))


def test_the_picker_answers_per_model_from_the_loaded_model(served):
    answers = {}
    for run in ("binary", "multilabel"):
        status, guessed = fetch(served[0] + "layers?run=%s&step=1" % run)  # a GET reads: the manifest, never ok by default
        assert status == 200 and guessed["head"] == EXPECTED_HEAD[run]
        if guessed["methods_from"] == "manifest":
            assert all(answer["ok"] is not True for answer in guessed["methods"].values())
        checked = post(served, "applicability", {"run": run, "step": 1})
        assert checked["methods_from"] == "model" and all(isinstance(a["ok"], bool) for a in checked["methods"].values())
        answers[run] = checked["methods"]
        assert fetch(served[0] + "layers?run=%s&step=1" % run)[1]["methods"] == answers[run]  # cached per checkpoint
    assert not answers["binary"]["pattern.net"]["ok"] and "binary head" in answers["binary"]["pattern.net"]["reason"]
    assert not answers["multilabel"]["pattern.net"]["ok"] and "'sigmoid'" in answers["multilabel"]["pattern.net"]["reason"]
    assert answers["binary"]["lrp.epsilon"]["ok"] and answers["multilabel"]["lrp.epsilon"]["ok"]


@pytest.mark.parametrize(
    "body, headers, status",
    [({"run": "binary", "step": 1}, {}, 403), ({"run": "binary", "step": 9}, POST, 404), ({"run": "binary", "step": 1, "x": 1}, POST, 400)],
)
def test_applicability_refuses_bad_requests(served, body, headers, status):
    assert fetch(served[0] + "applicability", body, headers)[0] == status


def test_suggestions_per_label_on_a_multilabel_head(served):
    body = {"models": [{"run": "multilabel", "step": 1}], "samples": {"run": "multilabel", "name": "validation"}}
    answer = post(served, "suggestions", body)
    assert answer["head"] == "multilabel"
    model, images = served[1]["multilabel"]
    q = 1.0 / (1.0 + np.exp(-logits_of(model, images)))
    binary_entropy = -(q * np.log(q, where=q > 0, out=np.zeros_like(q)) + (1 - q) * np.log(1 - q, where=q < 1, out=np.zeros_like(q)))
    np.testing.assert_allclose(answer["per_sample"]["entropy"], binary_entropy.mean(axis=1), rtol=0, atol=1e-4)
