"""Engine fixtures: graph mode for the whole process, and checkpoints saved like tb_xai_plugin saves them.

This folder runs in its own pytest process (see the Makefile): eager execution is disabled here.
"""

import json
import os
import sys
import time

import numpy as np
import pytest

from tb_xai_plugin import engine, metadata, model_info

engine.enable_graph_mode()


def write_checkpoint(model, directory, step=1, preprocessing=None, class_names=None):
    """Save `model` as <directory>/step-N.h5 with its manifest; return (path, manifest)."""
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    stem = metadata.checkpoint_basename(step)
    path = os.path.join(str(directory), stem + ".h5")
    model.save(path, save_format="h5")
    num_classes = int(model.output_shape[-1])
    manifest = {
        "format_version": metadata.FORMAT_VERSION,
        "kind": metadata.KIND_CHECKPOINT,
        "step": step,
        "file": stem + ".h5",
        "format": "h5",
        "model_name": model.name,
        "input_shape": [int(d) for d in model.input_shape[1:]],
        "num_classes": num_classes,
        "class_names": class_names or ["class %d" % i for i in range(num_classes)],
        "preprocessing": preprocessing or {"type": "none"},
        "output_activation": model_info.output_activation(model),
        "layers": model_info.describe_layers(model),
        "weights_sha256": model_info.weights_checksum(model.get_weights()),
        "file_sha256": "",
        "versions": {"tensorflow": tf.__version__, "python": sys.version.split()[0]},
        "wall_time": time.time(),
    }
    with open(os.path.join(str(directory), stem + ".json"), "w") as f:
        json.dump(manifest, f)
    return path, manifest


def small_cnn(input_shape=(16, 16, 3), classes=4, seed=0, softmax=True, bias=True):
    """A tiny conv net (conv-relu-pool-conv-relu-dense), deterministic for a seed."""
    import tensorflow as tf

    tf.compat.v1.set_random_seed(seed)
    init = tf.keras.initializers.GlorotUniform(seed=seed)
    layers = tf.keras.layers
    inputs = tf.keras.Input(input_shape)
    h = layers.Conv2D(6, 3, activation="relu", padding="same", name="conv1", kernel_initializer=init, use_bias=bias)(inputs)
    h = layers.MaxPooling2D(2, name="pool1")(h)
    h = layers.Conv2D(8, 3, activation="relu", padding="same", name="conv2", kernel_initializer=init, use_bias=bias)(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(16, activation="relu", name="dense1", kernel_initializer=init, use_bias=bias)(h)
    outputs = layers.Dense(classes, activation="softmax" if softmax else None, name="logits", kernel_initializer=init, use_bias=bias)(h)
    return tf.keras.Model(inputs, outputs, name="small_cnn")


@pytest.fixture(scope="session")
def cnn_checkpoint(tmp_path_factory):
    """(path, manifest) of small_cnn with random weights on 16x16x3 uint8 images scaled to [0, 1]."""
    scale = {"type": "scale", "scale": 1 / 255.0, "offset": 0.0}
    return write_checkpoint(small_cnn(), tmp_path_factory.mktemp("cnn"), preprocessing=scale)


@pytest.fixture(scope="session")
def cnn(cnn_checkpoint):
    """small_cnn loaded by the engine, shared by the tests of this process."""
    return engine.load_checkpoint(*cnn_checkpoint)


@pytest.fixture(scope="session")
def images():
    """Eight random uint8 images 16x16x3, fixed seed."""
    return np.random.default_rng(0).integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8)
