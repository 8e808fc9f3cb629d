"""Engine fixtures: checkpoints saved like tb_xai_plugin saves them, loaded by this stack's backend.

This folder runs in its own pytest process per stack (see the Makefile). In the Keras 2 stack
(.venv-innvestigate) checkpoints are .h5 files and the iNNvestigate backend explains them in graph
mode (eager execution is disabled for the process); in the Keras 3 stack (.venv) they are .keras
files and the native backend explains them, eager. Every test below runs on the backend of its stack.
"""

import importlib
import json
import os
import sys
import time

import numpy as np
import pytest

from tb_xai_plugin import engine, metadata, model_info
from tb_xai_plugin.engine import attribution, backends, registry

BACKEND = "innvestigate" if backends.innvestigate_available() else "native"
if BACKEND == "innvestigate":
    engine.enable_graph_mode()


def keras_version():
    """The Keras version of this stack ("2.14.0", "3.15.1", ...)."""
    import tensorflow as tf

    return getattr(tf.keras, "__version__", None) or importlib.import_module("keras").__version__


def backend_module(model, name):
    """The module `name` of the loaded model's backend (e.g. "pattern", "deeplift", "cam")."""
    return importlib.import_module("tb_xai_plugin.engine.backends.%s.%s" % (model.backend, name))


def logits(model, x):
    """float32 [N, K] logits of preprocessed inputs x, on any backend."""
    return model.scores(np.asarray(x, np.float32), "logit")


def probabilities(model, x):
    """float32 [N, K] probabilities of preprocessed inputs x, on any backend."""
    return model.scores(np.asarray(x, np.float32), "probability")


def stack_module(name):
    """The module `name` of this stack's backend (e.g. "pattern", "deeplift")."""
    return importlib.import_module("tb_xai_plugin.engine.backends.%s.%s" % (BACKEND, name))


def layer_output(model, layer, x):
    """float32: the output of `layer` where the model calls it, on preprocessed inputs x, on any backend."""
    if model.backend == "innvestigate":
        return model.run(model.layer_output(layer), {model.input: x})
    return model.layer_and_logits(layer)(np.asarray(x, np.float32), training=False)[0].numpy()


def keras_context(model):
    """The context to read the loaded model's Keras objects in: its graph and session (iNNvestigate), none (native)."""
    import contextlib

    return model.in_graph() if model.backend == "innvestigate" else contextlib.nullcontext()


def weights(model):
    """The loaded model's weight arrays in the order its manifest checksum was taken."""
    if model.backend == "innvestigate":
        return model.run(model.keras_model.weights)
    return model.keras_model.get_weights()


def built_size(model):
    """How much the backend has built for this model: graph ops (iNNvestigate), tf.function traces (native)."""
    if model.backend == "innvestigate":
        return len(model.graph.get_operations())
    return sum(fn.experimental_get_tracing_count() for fn in model.cache.values() if hasattr(fn, "experimental_get_tracing_count"))


innvestigate_only = pytest.mark.stack("keras2")  # checks the graph-mode backend's own graph and session


class BackendMethod:
    """A registry record whose compute() is the loaded model's backend's implementation (tests call methods directly)."""

    def __init__(self, method_id):
        self.record = registry.get(method_id)

    def __getattr__(self, name):
        return getattr(self.record, name)

    def compute(self, model, *args, **kwargs):
        """The backend's implementation, called as the dispatcher calls it."""
        return backends.implementation(model.backend, self.record.id).compute(model, *args, **kwargs)

    def reason_unusable(self, model):
        """None, or why the method cannot explain `model` (the record's rule, then the backend's)."""
        return attribution.reason_unusable(model, self.record)


def method(method_id):
    """The method `method_id` with its backend-dispatching compute (BackendMethod)."""
    return BackendMethod(method_id)


def write_checkpoint(model, directory, step=1, preprocessing=None, class_names=None):
    """Save `model` as <directory>/step-N.h5 (Keras 2) or .keras (Keras 3) with its manifest; return (path, manifest)."""
    import tensorflow as tf

    os.makedirs(directory, exist_ok=True)
    stem = metadata.checkpoint_basename(step)
    fmt = "keras" if keras_version().startswith("3") else "h5"
    path = os.path.join(str(directory), stem + "." + fmt)
    if fmt == "h5":
        model.save(path, save_format="h5")
    else:
        model.save(path)
    num_classes = int(model.output_shape[-1])
    manifest = {
        "format_version": metadata.FORMAT_VERSION,
        "kind": metadata.KIND_CHECKPOINT,
        "step": step,
        "file": os.path.basename(path),
        "format": fmt,
        "model_name": model.name,
        "input_shape": [int(d) for d in model.input_shape[1:]],
        "num_classes": num_classes,
        "class_names": class_names or ["class %d" % i for i in range(num_classes)],
        "preprocessing": preprocessing or {"type": "none"},
        "output_activation": model_info.output_activation(model),
        "layers": model_info.describe_layers(model),
        "weights_sha256": model_info.weights_checksum(model.get_weights()),
        "file_sha256": "",
        "versions": {"tensorflow": tf.__version__, "keras": keras_version(), "python": sys.version.split()[0]},
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
