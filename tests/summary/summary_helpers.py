"""Helpers of the logging tests: tiny models, file listings and TensorBoard's readers of event files."""

import os
import time

import tensorflow as tf
from tensorboard import context
from tensorboard.backend.event_processing import data_ingester, data_provider, plugin_event_multiplexer

from tb_xai_plugin import metadata, summary

CTX = context.RequestContext()
KERAS3 = summary.keras_version(tf.keras.Model()).startswith("3")  # this stack's Keras: 3 in .venv, 2 in .venv-innvestigate
FORMAT = "keras" if KERAS3 else "h5"  # how this stack's Keras stores a checkpoint
SUFFIX = metadata.CHECKPOINT_FORMATS[FORMAT]


def tiny_cnn(input_shape=(28, 28, 1), classes=3, name="tiny_cnn"):
    """A small Sequential CNN: conv 4x3x3, max pool, dense softmax."""
    return tf.keras.Sequential(
        [
            tf.keras.layers.Input(input_shape),
            tf.keras.layers.Conv2D(4, 3, activation="relu"),
            tf.keras.layers.MaxPooling2D(4),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(classes, activation="softmax"),
        ],
        name=name,
    )


def tiny_dense(input_shape=(4, 4, 1), classes=2):
    """The smallest image classifier: flatten, dense softmax."""
    return tf.keras.Sequential(
        [tf.keras.layers.Input(input_shape), tf.keras.layers.Flatten(), tf.keras.layers.Dense(classes, activation="softmax")],
        name="tiny_dense",
    )


def all_files(root):
    """Every file path under `root`, relative to it, sorted."""
    return sorted(
        os.path.relpath(os.path.join(folder, name), root) for folder, _, names in os.walk(root) for name in names
    )


def multiplexer_provider(logdir):
    """TensorBoard's Python reader over `logdir`, loaded once, sampling as `tensorboard --load_fast=false`."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
        tensor_size_guidance=data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE,
    )
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    return data_provider.MultiplexerDataProvider(multiplexer, logdir)


def xai_tensors(provider, downsample=10000):
    """{run: {tag: [TensorDatum]}} of every xai summary a data provider returns."""
    return provider.read_tensors(
        CTX, experiment_id="", plugin_name=metadata.PLUGIN_NAME, downsample=downsample
    )


def run_names(provider):
    """Sorted run names as TensorBoard lists them."""
    return sorted(run.run_name for run in provider.list_runs(CTX, experiment_id=""))


def wait_for(read, ready, timeout=60.0):
    """Call read() until ready(result) or `timeout` seconds pass; return the last result."""
    deadline = time.time() + timeout
    result = read()
    while not ready(result) and time.time() < deadline:
        time.sleep(0.2)
        result = read()
    return result
