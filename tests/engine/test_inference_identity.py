"""Augmentation and noise layers are the identity at inference: the native walk calls them so, and LRP passes them;
so are preprocess_input's Keras 3 op nodes (x / 127.5 - 1), elementwise affine like Rescaling.

Keras's "image classification from scratch" starts with RandomFlip and RandomRotation. Outside a model's
call those layers default to training=True; the walk (LRP, DeepLIFT, a layer inside a nested base) must call
them with training=False, so the walked model computes what the model computes. Tolerances from float32
(tests/engine/float32_error.py): a relevance sum over n products carries about n eps of relative rounding.
"""

import numpy as np
import pytest

from conftest import write_checkpoint
from float32_error import EPS
from tb_xai_plugin import engine

pytestmark = pytest.mark.stack("keras3")  # the native backend's walk


def augmented_model():
    """RandomFlip -> RandomRotation -> GaussianNoise -> Rescaling -> Conv2D(relu) -> GAP -> Dense, no biases."""
    import keras

    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.RandomFlip("horizontal")(inputs)
    x = layers.RandomRotation(0.2)(x)
    x = layers.GaussianNoise(0.5)(x)
    x = layers.Rescaling(1 / 255.0)(x)
    x = layers.Conv2D(4, 3, padding="same", activation="relu", use_bias=False)(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(3, use_bias=False)(x)
    return keras.Model(inputs, outputs, name="augmented")


@pytest.fixture(scope="module")
def augmented(tmp_path_factory):
    """(the Keras model, the engine's model of it)."""
    keras_model = augmented_model()
    return keras_model, engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path_factory.mktemp("augmented")))


@pytest.fixture(scope="module")
def images():
    """Four random uint8 images 8x8x3."""
    return np.random.default_rng(4).integers(1, 256, size=(4, 8, 8, 3), dtype=np.uint8)


def test_the_walk_computes_what_the_model_computes_at_inference(augmented, images):
    from tb_xai_plugin.engine.backends.native.walk import Walk

    keras_model, _ = augmented
    x = images.astype(np.float32)
    walk = Walk(keras_model)
    walked = np.asarray(walk.forward(x)[walk.outputs[0]])
    expected = np.asarray(keras_model(x, training=False))
    accumulated = 27 + 64 + 4  # terms summed by the conv, the pooling and the dense layer
    np.testing.assert_allclose(walked, expected, rtol=0, atol=2 * accumulated * EPS * np.abs(expected).max())


def test_lrp_passes_the_augmentation_layers_and_conserves_the_logit(augmented, images):
    _, model = augmented
    assert engine.applicable_methods(model)["lrp.z"]["ok"]
    assert engine.applicable_methods(model)["deeplift"]["ok"]
    result = engine.attribute(model, "lrp.z", images)
    logits = model.scores(model.preprocess(images), "logit")[np.arange(len(images)), result.targets]
    # n = 27 products per conv output, 64 per pooled mean, 4 per logit: relative rounding well below 1e-4.
    np.testing.assert_allclose(result.maps.sum(axis=(1, 2)), logits, rtol=1e-4, atol=1e-4 * np.abs(logits).max())


@pytest.fixture(scope="module")
def preprocessing_ops(tmp_path_factory):
    """The engine's model of x / 127.5 - 1 -> Conv2D(relu) -> GAP -> Dense, no biases (MobileNetV2's preprocess_input inside)."""
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", use_bias=False)(inputs / 127.5 - 1.0)
    outputs = keras.layers.Dense(3, use_bias=False)(keras.layers.GlobalAveragePooling2D()(x))
    keras_model = keras.Model(inputs, outputs, name="ops_first")
    return engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path_factory.mktemp("ops_first")))


def test_lrp_passes_preprocessing_ops_and_conserves_the_logit(preprocessing_ops, images):
    model = preprocessing_ops
    assert all(engine.applicable_methods(model)[m]["ok"] for m in ("lrp.z", "lrp.flat", "deep_taylor.bounded", "deeplift"))
    result = engine.attribute(model, "lrp.z", images)
    logits = model.scores(model.preprocess(images), "logit")[np.arange(len(images)), result.targets]
    np.testing.assert_allclose(result.maps.sum(axis=(1, 2)), logits, rtol=1e-4, atol=1e-4 * np.abs(logits).max())
