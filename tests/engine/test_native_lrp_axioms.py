"""LRP's axioms, on whichever backend this stack runs (native in `.venv`, iNNvestigate in `.venv-innvestigate`).

Each expected value is computed here in float64 numpy from the model's weights. Tolerances come
from float32: a relevance sum over n products carries a relative rounding of about n * 6e-8
(n <= 1,000 here, so <= 1e-4), on top of the forward pass's own.
"""

import numpy as np
import pytest

from conftest import write_checkpoint
from tb_xai_plugin import engine

RTOL = 1e-4


def mlp(seed, hidden=16, classes=4, shape=(8, 8, 3)):
    """Flatten -> Dense(hidden, relu) -> Dense(classes), no biases (hidden=0: one Dense layer)."""
    import tensorflow as tf

    init = tf.keras.initializers.GlorotUniform(seed=seed)
    inputs = tf.keras.Input(shape)
    h = tf.keras.layers.Flatten()(inputs)
    if hidden:
        h = tf.keras.layers.Dense(hidden, activation="relu", use_bias=False, kernel_initializer=init)(h)
    outputs = tf.keras.layers.Dense(classes, use_bias=False, kernel_initializer=init)(h)
    return tf.keras.Model(inputs, outputs, name="mlp")


def loaded(keras_model, tmp_path):
    """The engine's model of keras_model (saved as this stack saves checkpoints) and its weights (float64)."""
    weights = [w.astype(np.float64) for w in keras_model.get_weights()]
    scale = {"type": "scale", "scale": 1 / 255.0, "offset": 0.0}
    return engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path, preprocessing=scale)), weights


@pytest.fixture(scope="module")
def positive_images():
    """Six random images with every pixel in 1..255 (inputs > 0 after scaling)."""
    return np.random.default_rng(3).integers(1, 256, size=(6, 8, 8, 3), dtype=np.uint8)


def test_lrp_z_conserves_the_logit_on_a_bias_free_relu_net(tmp_path, positive_images):
    """sum_i R_i = f_t(x) for LRP-z on a bias-free ReLU net (no relevance absorbed)."""
    model, (v, w) = loaded(mlp(1), tmp_path)
    result = engine.attribute(model, "lrp.z", positive_images, target={"kind": "class", "index": 2})
    x = model.preprocess(positive_images).reshape(len(positive_images), -1).astype(np.float64)
    logit = np.maximum(x @ v, 0) @ w[:, 2]
    np.testing.assert_allclose(result.raw.reshape(len(x), -1).sum(1), logit, rtol=RTOL, atol=RTOL * np.abs(logit).max())


@pytest.mark.parametrize("epsilon", [0.01, 1.0])
def test_lrp_epsilon_conserves_up_to_the_absorbed_share(tmp_path, positive_images, epsilon):
    """sum_i R_i = sum_j a_j / (a_j + eps sign a_j) R_j, R_j = a_j w_jt / (z_t + eps sign z_t) z_t: eps absorbs the rest."""
    model, (v, w) = loaded(mlp(2), tmp_path)
    result = engine.attribute(model, "lrp.epsilon", positive_images, params={"epsilon": epsilon}, target={"kind": "class", "index": 0})
    x = model.preprocess(positive_images).reshape(len(positive_images), -1).astype(np.float64)
    a = np.maximum(x @ v, 0)
    z = a @ w[:, 0]
    upper = a * w[:, 0] / (z + epsilon * np.where(z >= 0, 1, -1))[:, None] * z[:, None]
    expected = (a / (a + epsilon) * upper).sum(1)  # a >= 0: sign(0) = +1
    total = result.raw.reshape(len(x), -1).sum(1)
    np.testing.assert_allclose(total, expected, rtol=RTOL, atol=RTOL * np.abs(z).max())
    assert np.all(np.abs(total) < np.abs(z)), "epsilon must absorb a share of the relevance"


@pytest.mark.parametrize("method, params, alpha, beta", [
    ("lrp.alpha_2_beta_1", {}, 2.0, 1.0),
    ("lrp.alpha_beta", {"alpha": 3.0, "beta": 2.0}, 3.0, 2.0),
    ("lrp.alpha_1_beta_0", {}, 1.0, 0.0),
])
def test_alpha_beta_keeps_the_ratio_of_its_positive_and_negative_parts(tmp_path, positive_images, method, params, alpha, beta):
    """One bias-free layer, inputs > 0: the pixels with w_it > 0 carry alpha f_t(x), those with w_it < 0 carry -beta f_t(x)."""
    model, (w,) = loaded(mlp(3, hidden=0), tmp_path)
    target = 1
    result = engine.attribute(model, method, positive_images, params=params, target={"kind": "class", "index": target})
    x = model.preprocess(positive_images).reshape(len(positive_images), -1).astype(np.float64)
    logit = x @ w[:, target]
    r = result.raw.reshape(len(x), -1)
    excitatory, inhibitory = w[:, target] > 0, w[:, target] < 0
    tolerance = RTOL * np.abs(logit).max() * alpha
    np.testing.assert_allclose(r[:, excitatory].sum(1), alpha * logit, rtol=RTOL, atol=tolerance)
    np.testing.assert_allclose(r[:, inhibitory].sum(1), -beta * logit, rtol=RTOL, atol=tolerance)
