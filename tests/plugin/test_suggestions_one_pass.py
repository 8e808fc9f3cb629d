"""POST suggestions with a layer: the first model's probabilities and activation come from one task
(one forward pass in the worker), a repeat comes from the cache, and a bad layer fails only the activation."""

import numpy as np
import tensorflow as tf

from tests.plugin.conftest import body_of, cnn_images, tiny_cnn

MODELS = [{"run": "cnn", "step": 1}, {"run": "cnn", "step": 2}]
BIG = {"run": "cnn", "name": "big"}


def test_the_first_model_answers_probabilities_and_activation_in_one_task(served):
    body = {"models": MODELS, "samples": BIG, "layer": "conv", "neuron": 2}
    submitted = served.plugin.pool.stats["submitted"]
    response = served.post("suggestions", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    out = body_of(response)
    assert served.plugin.pool.stats["submitted"] - submitted == 2  # one task per model, none for the activation
    images, labels = cnn_images(64, seed=1)
    x = images / np.float32(255)
    for entry, seed in zip(out["per_model"], (1, 2)):
        probs = tiny_cnn(seed).predict(x, verbose=0)
        assert entry["ok"] is True and entry["predicted"] == probs.argmax(axis=1).tolist()
        np.testing.assert_allclose(entry["p_true"], probs[np.arange(64), labels], rtol=1e-5)
    model = tiny_cnn(1)
    conv = tf.keras.Model(model.input, model.get_layer("conv").output).predict(x, verbose=0)
    assert out["activation"]["ok"] is True
    np.testing.assert_allclose(out["activation"]["mean"], conv[..., 2].mean(axis=(1, 2)), rtol=1e-4, atol=1e-6)
    # the same request again: every part from the cache, the same answer
    again = served.post("suggestions", body)
    assert served.plugin.pool.stats["submitted"] - submitted == 2 and body_of(again) == out


def test_an_unknown_layer_fails_only_the_activation(served):
    body = {"models": MODELS, "samples": {"run": "cnn", "name": "val"}, "layer": "nope"}
    out = body_of(served.post("suggestions", body))
    assert [m["ok"] for m in out["per_model"]] == [True, True]
    assert out["activation"]["ok"] is False and "unknown layer" in out["activation"]["error"]
    assert out["per_sample"]["distinct_classes"] and None not in out["per_sample"]["mean_top_score"]
