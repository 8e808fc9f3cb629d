"""A task where only a small bright patch decides the class, and a tiny CNN trained on it once per process.

Class 1: dim noise with a bright PATCH x PATCH square somewhere; class 0: the noise alone. A model
that solves it must look at the patch, so a faithful attribution puts its mass there.
"""

import numpy as np

from conftest import keras_version, write_checkpoint

SIZE = 16
PATCH = 3
_TRAINED = {}


def make_images(count, seed):
    """(images [N, SIZE, SIZE, 1] float32, labels [N], patch corners [N, 2] (-1 for no patch))."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.3, size=(count, SIZE, SIZE, 1)).astype(np.float32)
    labels = np.arange(count) % 2
    corners = np.full((count, 2), -1)
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, SIZE - PATCH + 1, size=2)
        images[i, r : r + PATCH, c : c + PATCH] = 1.0
        corners[i] = r, c
    return images, labels, corners


def patch_mask(corner, margin):
    """[SIZE, SIZE] bool: the patch at `corner`, grown by `margin` pixels on each side."""
    mask = np.zeros((SIZE, SIZE), bool)
    r, c = corner
    mask[max(0, r - margin) : r + PATCH + margin, max(0, c - margin) : c + PATCH + margin] = True
    return mask


def _train():
    """A conv-relu, conv-relu, global-average-pool, softmax net fit to the task (graph mode Keras)."""
    import tensorflow as tf

    tf.compat.v1.set_random_seed(1)
    layers = tf.keras.layers
    init = tf.keras.initializers.GlorotUniform(seed=1)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((SIZE, SIZE, 1)),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1", kernel_initializer=init),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2", kernel_initializer=init),
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(2, activation="softmax", name="probs", kernel_initializer=init),
        ],
        name="patch_cnn",
    )
    images, labels, _ = make_images(1024, seed=0)
    keras2 = keras_version().startswith("2")
    adam = tf.keras.optimizers.legacy.Adam(0.01) if keras2 else tf.keras.optimizers.Adam(0.01)
    model.compile(adam, "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, epochs=15, batch_size=64, shuffle=False, verbose=0)
    test_images, test_labels, _ = make_images(256, seed=99)
    accuracy = (model.predict(test_images, verbose=0).argmax(axis=1) == test_labels).mean()
    assert accuracy > 0.95, "the patch model did not learn its task (accuracy %.2f)" % accuracy
    return model


def trained_checkpoint(directory):
    """(path, manifest) of the trained patch model, trained and saved on the first call of the process."""
    if "checkpoint" not in _TRAINED:
        _TRAINED["checkpoint"] = write_checkpoint(_train(), directory)
    return _TRAINED["checkpoint"]
