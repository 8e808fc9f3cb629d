"""Run with KERAS_BACKEND=jax: train a tiny CNN two epochs of one step with the XAI callback into argv[1].

Also saves the trained model's probabilities on the logged samples to <argv[1]>/jax_probabilities.npy,
for the test process (TensorFlow backend) to compare with.
"""

import os
import sys

import keras
import numpy as np

import tb_xai_plugin.keras


def main(logdir):
    """Train under JAX with the callback (a checkpoint each epoch); write the final probabilities."""
    assert keras.backend.backend() == "jax", keras.backend.backend()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((8, 10, 10, 3), dtype=np.float32)
    y = rng.integers(0, 3, 8)
    inputs = keras.Input((10, 10, 3))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    outputs = keras.layers.Dense(3, activation="softmax", name="dense")(h)
    model = keras.Model(inputs, outputs, name="jax_cnn")
    model.compile("adam", "sparse_categorical_crossentropy")
    callback = tb_xai_plugin.keras.XaiCallback(os.path.join(logdir, "jax"), samples=(x, y), class_names=["a", "b", "c"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback])
    np.save(os.path.join(logdir, "jax_probabilities.npy"), np.asarray(model.predict(x, verbose=0)))


if __name__ == "__main__":
    main(sys.argv[1])
