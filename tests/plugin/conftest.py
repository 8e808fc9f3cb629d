"""Logdirs written with the real summary ops, and the plugin served the way TensorBoard does it:
EventMultiplexer -> MultiplexerDataProvider -> TBContext -> XaiPlugin -> TensorBoardWSGI -> test Client.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend import application
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from werkzeug import test as werkzeug_test

from tb_xai_plugin import files, metadata, summary
from tb_xai_plugin.plugin.xai_plugin import XaiPlugin, default_flags

PREFIX = "/data/plugin/xai/"
POST_HEADERS = {"X-XAI-Request": "1"}
CLASSES = ["zero", "one", "two"]
# Suggestion models: logits = v * w + b for a constant image of value v (Dense over Flatten, weights w/784).
DENSE_MODELS = {
    "a": ([0.0, 0.0, 0.0], [2.0, 0.0, 0.0]),
    "b": ([0.0, 1.0, 0.0], [0.0, 0.0, 1.5]),
    "c": ([0.0, 0.0, 1.0], [2.5, 0.0, 0.0]),
}
CONST_VALUES = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
CONST_LABELS = np.array([0, 1, 2, 0])


def tiny_cnn(seed):
    """28x28x1 -> conv(4) -> global average pool -> dense(3, softmax), seeded."""
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf.keras.layers.Dense(3, activation="softmax", name="dense")(x)
    return tf.keras.Model(inputs, outputs, name="tiny_cnn")


def dense_model(w, b):
    """28x28x1 -> flatten -> dense(3, softmax) with logits = mean-free sum(x) * w / 784 + b."""
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Flatten(name="flatten")(inputs)
    outputs = tf.keras.layers.Dense(3, activation="softmax", name="dense")(x)
    model = tf.keras.Model(inputs, outputs, name="dense_model")
    kernel = np.tile(np.asarray(w, np.float32) / 784.0, (784, 1))
    model.get_layer("dense").set_weights([kernel, np.asarray(b, np.float32)])
    return model


def cnn_images(count=6, seed=0):
    """`count` random 28x28x1 uint8 images with labels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 28, 28, 1), dtype=np.uint8), rng.integers(0, 3, count)


SCALE = {"type": "scale", "scale": 1.0 / 255.0, "offset": 0.0}


def checkpoint_file(run_dir, step):
    """The data file (or folder) of the checkpoint at `step` in `run_dir`, as its manifest names it (.keras, .h5, ...)."""
    folder = files.checkpoints_dir(run_dir)
    manifest = files.read_manifest(os.path.join(folder, metadata.checkpoint_basename(step) + ".json"), metadata.KIND_CHECKPOINT)
    return os.path.join(folder, manifest["file"])


def write_run(logdir, run, models_by_step, sample_sets=(), preprocessing=None):
    """Log checkpoints {step: model} and sample sets [(name, images, labels)] into <logdir>/<run>."""
    writer = summary.create_file_writer(os.path.join(logdir, run))
    with writer.as_default():
        for name, images, labels in sample_sets:
            assert summary.samples(name, images, step=0, labels=labels, class_names=CLASSES)
        for step, model in models_by_step.items():
            assert summary.checkpoint(model, step=step, class_names=CLASSES, preprocessing=preprocessing)
    writer.flush()
    writer.close()


def build_logdir(root):
    """cnn (steps 1, 2; samples 'val' of 6 and 'big' of 64), a/b/c dense models (step 0; samples 'const' in a)."""
    images, labels = cnn_images()
    big = cnn_images(64, seed=1)
    sets = [("val", images, labels), ("big", *big)]
    write_run(root, "cnn", {1: tiny_cnn(1), 2: tiny_cnn(2)}, sets, preprocessing=SCALE)
    const = np.repeat(CONST_VALUES, 784).reshape(4, 28, 28, 1)
    for run, (w, b) in DENSE_MODELS.items():
        sets = [("const", const, CONST_LABELS)] if run == "a" else []
        write_run(root, run, {0: dense_model(w, b)}, sets)
    return root


class Served:
    """A plugin on a logdir behind TensorBoard's WSGI app, with helpers for the routes."""

    def __init__(self, logdir, cache_dir, **flags):
        self.logdir = logdir
        self.multiplexer = plugin_event_multiplexer.EventMultiplexer()
        self.multiplexer.AddRunsFromDirectory(logdir)
        self.multiplexer.Reload()
        provider = data_provider.MultiplexerDataProvider(self.multiplexer, logdir)
        context = base_plugin.TBContext(
            logdir=logdir, data_provider=provider, flags=default_flags(xai_cache_dir=cache_dir, **flags)
        )
        self.plugin = XaiPlugin(context)
        self.app = application.TensorBoardWSGI([self.plugin])
        self.client = werkzeug_test.Client(self.app)

    def reload(self):
        """Let the multiplexer see runs written since the start."""
        self.multiplexer.AddRunsFromDirectory(self.logdir)
        self.multiplexer.Reload()

    def get(self, route, **query):
        return self.client.get(PREFIX + route, query_string=query)

    def post(self, route, body, headers=POST_HEADERS, **kwargs):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        return self.client.post(PREFIX + route, data=data, headers=headers, content_type="application/json", **kwargs)

    def close(self):
        self.plugin.close()


@pytest.fixture(scope="session")
def logdir(tmp_path_factory):
    """The shared logdir (read-only for tests: tests that change files copy it first)."""
    return build_logdir(str(tmp_path_factory.mktemp("logdir")))


@pytest.fixture(scope="module")
def served(logdir, tmp_path_factory):
    """One plugin (and its worker, started on the first compute request) per test module."""
    server = Served(logdir, str(tmp_path_factory.mktemp("cache")))
    yield server
    server.close()


def body_of(response):
    """The JSON body of a response."""
    return json.loads(response.get_data(as_text=True))
