"""Tiny models of every head kind (docs/heads.md), 16x16x3 inputs: conv(4, 'same') -> global average pool -> head.

Shared by the logging tests and the HTTP tests; eager, in either stack (the workers explain them).
"""

import numpy as np
import tensorflow as tf

SHAPE = (16, 16, 3)
SCALE = {"type": "scale", "scale": 1.0 / 255.0, "offset": 0.0}
# run -> (units, final activation, class_names, loss): one of each head kind.
HEADS = {
    "binary": (1, "sigmoid", ["cat", "dog"], "binary_crossentropy"),
    "binary_logit": (1, None, ["cat", "dog"], tf.keras.losses.BinaryCrossentropy(from_logits=True)),
    "multilabel": (3, "sigmoid", ["sky", "tree", "car"], "binary_crossentropy"),
    "logits": (3, None, ["a", "b", "c"], tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
    "softmax": (3, "softmax", ["a", "b", "c"], "sparse_categorical_crossentropy"),
}
EXPECTED_HEAD = {
    "binary": "binary_sigmoid", "binary_logit": "binary_logit", "multilabel": "multilabel", "logits": "logits", "softmax": "softmax",
}  # fmt: skip
SATURATED_LOGIT = 25.0  # the multi-label head's bias of label 0: float32 sigmoid rounds it to 1.0 (from z > 17)


def head_model(units, activation, seed=0, name="head_model"):
    """16x16x3 -> Conv2D(4, 3, same, relu) -> GlobalAveragePooling2D -> Dense(units, activation), seeded."""
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input(SHAPE)
    h = tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    h = tf.keras.layers.GlobalAveragePooling2D(name="pool")(h)
    outputs = tf.keras.layers.Dense(units, activation=activation, name="head")(h)
    return tf.keras.Model(inputs, outputs, name=name)


def samples(count=4, seed=0):
    """(uint8 images [count, 16, 16, 3], int labels in {0, 1}), seeded."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count,) + SHAPE, dtype=np.uint8), rng.integers(0, 2, count)


def logits_of(model, images):
    """float64 [N, units]: the head's pre-activation z of images scaled to [0, 1], in this process."""
    features = tf.keras.Model(model.input, model.get_layer("head").input)(images.astype(np.float32) / 255.0).numpy()
    kernel, bias = model.get_layer("head").get_weights()
    return features.astype(np.float64) @ kernel + bias
