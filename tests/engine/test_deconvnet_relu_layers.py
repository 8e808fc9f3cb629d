"""Deconvnet through Keras ReLU layers (MobileNetV2's ReLU(6.)), not only through fused / Activation ReLUs.

iNNvestigate's Deconvnet re-makes each ReLU-bearing layer without its activation, and a ReLU layer
takes no `activation` argument: building it failed ("Keyword argument not understood: 'activation'").
Deconvnet ignores the forward pass at its ReLUs, so a model with separate ReLU / ReLU(6.) layers has
the same map as test_cam's hand model with fused ReLUs and the same weights: numpy from the paper.
"""

import numpy as np
import pytest
from conftest import method, write_checkpoint
from float32_error import EPS
from test_backward_start import TARGETS, X, hand_deconvnet

from tb_xai_plugin import engine

# Accumulation lengths along the backward pass: the dense row (4), conv2's transposed sum (2x2 x 4 channels
# at most), conv1's (3x3 x 3 channels).
BACKWARD_LENGTH = 4 + 2 * 2 * 4 + 3 * 3 * 3


def relu_layer_model():
    """test_cam's hand model with its ReLUs as layers: conv1 -> ReLU(6.) -> conv2 -> ReLU() -> pool -> dense softmax."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((6, 6, 2))
    h = layers.ReLU(6.0, name="relu6")(layers.Conv2D(3, 3, padding="same", name="conv1")(inputs))
    h = layers.ReLU(name="relu")(layers.Conv2D(4, 2, strides=2, name="conv2")(h))
    outputs = layers.Dense(3, activation="softmax", name="probs")(layers.GlobalAveragePooling2D(name="gap")(h))
    model = tf.keras.Model(inputs, outputs, name="relu_layers")
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """(LoadedModel, float64 weights k1, b1, k2, b2, wd, bd) of relu_layer_model."""
    keras_model = relu_layer_model()
    weights = [w.astype(np.float64) for w in keras_model.get_weights()]
    return engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path_factory.mktemp("relu_layers"))), weights


def test_deconvnet_through_relu_layers_equals_the_hand_computation(loaded):
    model, weights = loaded
    got = method("deconvnet").compute(model, X, TARGETS, {}, None, None, None)
    expected = np.stack([hand_deconvnet(weights, image, t) for image, t in zip(X, TARGETS)])
    magnitude = np.stack([hand_deconvnet([np.abs(w) for w in weights], image, t) for image, t in zip(X, TARGETS)])
    assert np.abs(expected).max() > 0
    assert np.all(np.abs(got - expected) <= BACKWARD_LENGTH * EPS * magnitude.max())
