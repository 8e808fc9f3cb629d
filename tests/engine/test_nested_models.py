"""A transfer-style model whose base network is one nested layer: its activations, inner layers and default layer.

The nested layer's own `output` belongs to its own graph, not to its call inside the outer model;
activations must come from that call, for the base and for a layer inside it ("features/conv_a").
The default layer is the last convolution inside the base (a checkpoint listing the base as one
layer: the base), the same in the engine and in the layers route's manifest rule.
"""

import numpy as np
import pytest
from conftest import write_checkpoint, layer_output
from test_cam import forward, hand_model

from tb_xai_plugin import engine, model_info
from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.engine.predict import activation_means, probabilities, probabilities_and_activation_means

X = np.random.default_rng(5).normal(size=(4, 6, 6, 2)).astype(np.float32)


def nested_model():
    """test_cam's hand model with both convolutions inside a nested Sequential called 'features'."""
    import tensorflow as tf

    layers = tf.keras.layers
    features = tf.keras.Sequential(
        [tf.keras.Input((6, 6, 2)), layers.Conv2D(3, 3, padding="same", activation="relu", name="conv_a"),
         layers.Conv2D(4, 2, strides=2, activation="relu", name="conv_b")],
        name="features",
    )
    inputs = tf.keras.Input((6, 6, 2))
    outputs = layers.Dense(3, activation="softmax", name="probs")(layers.GlobalAveragePooling2D(name="gap")(features(inputs)))
    return tf.keras.Model(inputs, outputs, name="transfer")


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    """(LoadedModel of nested_model with hand_model's weights, those weights in float64)."""
    keras_model = nested_model()
    weights = hand_model().get_weights()
    keras_model.set_weights(weights)
    path, manifest = write_checkpoint(keras_model, tmp_path_factory.mktemp("nested"))
    return engine.load_checkpoint(path, manifest), [w.astype(np.float64) for w in weights]


def features_by_hand(weights):
    """[N, 3, 3, 4]: the base network's output (conv2 after ReLU) computed with numpy."""
    return np.stack([forward(weights, image)[3] for image in X])


def test_layer_output_is_the_nested_models_call_in_the_outer_model(nested):
    model, weights = nested
    np.testing.assert_allclose(layer_output(model, "features", X), features_by_hand(weights), rtol=1e-4, atol=1e-5)


def test_activation_means_of_the_nested_base_equal_the_hand_computation(nested):
    model, weights = nested
    features = features_by_hand(weights)
    np.testing.assert_allclose(activation_means(model, X, "features"), features.mean(axis=(1, 2, 3)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(activation_means(model, X, "features", neuron=2), features[..., 2].mean(axis=(1, 2)), rtol=1e-4, atol=1e-6)
    probs, means = probabilities_and_activation_means(model, X, "features", neuron=1)
    np.testing.assert_allclose(means, features[..., 1].mean(axis=(1, 2)), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(probs, probabilities(model, X), rtol=1e-6)


def test_the_layers_inside_a_nested_base_are_listed_by_path(nested):
    model, _ = nested
    names = [layer["name"] for layer in model.layers]
    assert names[names.index("features") + 1 : names.index("features") + 3] == ["features/conv_a", "features/conv_b"]
    assert [layer["conv"] for layer in model.layers if layer["name"].startswith("features/")] == [True, True]


def test_a_layer_inside_the_base_is_its_call_inside_the_outer_model(nested):
    model, weights = nested
    by_hand = np.stack([forward(weights, image)[1] for image in X])  # conv_a after its ReLU
    np.testing.assert_allclose(layer_output(model, "features/conv_a", X), by_hand, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(activation_means(model, X, "features/conv_a", neuron=1), by_hand[..., 1].mean(axis=(1, 2)),
                               rtol=1e-4, atol=1e-6)
    with pytest.raises(XaiError, match="features/nothing"):
        activation_means(model, X, "features/nothing")


def test_the_default_layer_is_the_last_convolution_inside_a_nested_base(nested, cnn):
    model, _ = nested
    assert model_info.default_layer(model.layers) == "features/conv_b"
    listed_before_paths = [layer for layer in model.layers if "/" not in layer["name"]]  # a checkpoint logged before
    assert model_info.last_conv_layer(listed_before_paths) is None
    assert model_info.default_layer(listed_before_paths) == "features"
    wide = {"name": "wide", "type": "Conv2D", "output_shape": [4, 4, 8], "conv": True}
    point = {"name": "point", "type": "Conv2D", "output_shape": [1, 1, 8], "conv": True}
    assert model_info.default_layer([wide, point]) == "wide"  # a 1x1 output only gives a constant map
    assert model_info.default_layer([point]) == "point"
    assert model_info.default_layer(cnn.layers) == "conv2"
    flat = [{"name": "input_1", "type": "InputLayer", "output_shape": [4, 4, 1], "conv": False},
            {"name": "flatten", "type": "Flatten", "output_shape": [16], "conv": False}]
    assert model_info.default_layer(flat) is None


def test_attribute_defaults_to_the_nested_base_with_a_neuron(nested):
    model, weights = nested
    target = {"kind": "class", "index": 0}
    default = engine.attribute(model, "activation", X, target=target, neuron=3)
    chosen = engine.attribute(model, "activation", X, target=target, layer="features/conv_b", neuron=3)
    np.testing.assert_array_equal(default.maps, chosen.maps)
    base = engine.attribute(model, "activation", X, target=target, layer="features", neuron=3)
    np.testing.assert_allclose(base.maps, chosen.maps, rtol=1e-5, atol=1e-6)
    assert np.abs(default.maps).max() > 0
