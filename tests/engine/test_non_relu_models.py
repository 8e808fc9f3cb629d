"""Models with tanh units: every method answers applicable_methods, and a refused one fails with XaiError.

iNNvestigate's deconvnet, guided backprop and Deep Taylor refuse non-ReLU activations with their own
NotAnalyzeableModelException; the engine turns it into the reason.
"""

import numpy as np
import pytest
from conftest import BACKEND, write_checkpoint, method

from tb_xai_plugin import engine
from tb_xai_plugin.engine import registry
from tb_xai_plugin.errors import XaiError

RELU_ONLY = ("deconvnet", "guided_backprop", "deep_taylor")


def tanh_model(kind):
    """8x8x1 inputs -> a tanh Conv2D or Dense layer -> dense softmax over 3 classes."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((8, 8, 1))
    if kind == "conv":
        h = layers.Flatten()(layers.Conv2D(3, 3, activation="tanh", name="tanh_conv")(inputs))
    else:
        h = layers.Dense(5, activation="tanh", name="tanh_dense")(layers.Flatten()(inputs))
    return tf.keras.Model(inputs, layers.Dense(3, activation="softmax", name="probs")(h), name="tanh_" + kind)


@pytest.fixture(scope="module", params=["conv", "dense"])
def tanh(request, tmp_path_factory):
    """A loaded model with one tanh layer (conv or dense)."""
    return engine.load_checkpoint(*write_checkpoint(tanh_model(request.param), tmp_path_factory.mktemp("tanh")))


def test_every_method_answers_ok_or_a_reason(tanh):
    answers = engine.applicable_methods(tanh)
    assert set(answers) == set(registry.METHODS)
    for method_id, answer in answers.items():
        assert answer["ok"] == (answer["reason"] == ""), method_id
    for method_id in RELU_ONLY:
        assert not answers[method_id]["ok"]
        assert "ReLU" in answers[method_id]["reason"], answers[method_id]["reason"]
    assert answers["gradient"]["ok"] and answers["integrated_gradients"]["ok"]
    if BACKEND == "innvestigate":  # iNNvestigate's LRP-epsilon passes tanh through; the native LRP refuses it
        assert answers["lrp.epsilon"]["ok"]


def test_a_refused_method_raises_xai_error(tanh):
    images = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32)
    refused = [m for m, answer in engine.applicable_methods(tanh).items() if not answer["ok"]]
    assert set(RELU_ONLY) <= set(refused)
    for method_id in refused:
        with pytest.raises(XaiError, match="cannot explain this model"):
            engine.attribute(tanh, method_id, images, target={"kind": "class", "index": 0})
    with pytest.raises(XaiError, match="ReLU"):
        method("deconvnet").compute(tanh, images, np.array([0, 1]), {}, None, None, None)
    assert engine.attribute(tanh, "gradient", images, target={"kind": "class", "index": 0}).maps.shape == (2, 8, 8)
