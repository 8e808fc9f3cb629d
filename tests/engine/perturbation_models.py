"""Small models for the perturbation methods' tests: an exactly linear one, and a 4-pixel nonlinear one."""

import numpy as np


def linear_pixels_model(values):
    """Logits (sum v x, -sum v x) of an image shaped like `values` [H, W, C]: no bias, no nonlinearity."""
    import tensorflow as tf

    inputs = tf.keras.Input(values.shape)
    dense = tf.keras.layers.Dense(2, use_bias=False, name="logits")
    model = tf.keras.Model(inputs, dense(tf.keras.layers.Flatten()(inputs)), name="linear_pixels")
    dense.set_weights([np.stack([values.ravel(), -values.ravel()], axis=1)])
    return model


def four_pixel_model(seed):
    """A ReLU net on 2x2x1 images (four features), random weights: its Shapley values need every coalition."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    inputs = tf.keras.Input((2, 2, 1))
    hidden = tf.keras.layers.Dense(6, activation="relu")
    out = tf.keras.layers.Dense(2)
    model = tf.keras.Model(inputs, out(hidden(tf.keras.layers.Flatten()(inputs))), name="four_pixels")
    hidden.set_weights([rng.normal(size=(4, 6)), rng.normal(scale=0.5, size=6)])
    out.set_weights([rng.normal(size=(6, 2)), np.zeros(2)])
    return model
