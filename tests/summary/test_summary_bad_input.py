"""Bad input to the summary ops: one XaiError with a clear message, and nothing written."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

from summary_helpers import all_files, multiplexer_provider, tiny_cnn, tiny_dense, xai_tensors
from tb_xai_plugin import files, summary
from tb_xai_plugin.errors import XaiError

GOOD_IMAGES = np.zeros((3, 4, 4, 1), np.float32)


def _attempt(logdir, op, step=1):
    """Run op() under a writer for <logdir>/run and return the XaiError it raises (failing if none)."""
    run_dir = os.path.join(str(logdir), "run")
    writer = summary.create_file_writer(run_dir)
    with writer.as_default(step=step), pytest.raises(XaiError) as caught:
        op()
    writer.close()
    _assert_nothing_logged(str(logdir), run_dir)
    return str(caught.value)


def _assert_nothing_logged(logdir, run_dir):
    """No xai files and no xai summaries under `logdir`."""
    assert not os.path.exists(files.plugin_dir(run_dir)), all_files(run_dir)
    assert xai_tensors(multiplexer_provider(logdir)) == {}


class Subclassed(tf.keras.Model):
    """A subclassed model: no input shape Keras can report."""

    def __init__(self):
        super().__init__()
        self.dense = tf.keras.layers.Dense(2)

    def call(self, x):
        return self.dense(tf.reshape(x, (-1, 16)))


def _subclassed():
    """A built Subclassed model."""
    model = Subclassed()
    model(tf.zeros((1, 4, 4, 1)))
    return model


def _vector_model():
    """A classifier of vectors, not images."""
    return tf.keras.Sequential([tf.keras.layers.Input((16,)), tf.keras.layers.Dense(2)])


def _two_inputs():
    """A model with two image inputs."""
    a, b = tf.keras.Input((4, 4, 1)), tf.keras.Input((4, 4, 1))
    x = tf.keras.layers.Flatten()(tf.keras.layers.Add()([a, b]))
    return tf.keras.Model([a, b], tf.keras.layers.Dense(2)(x))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: "model.h5", "expected a Keras model, got str"),
        (lambda: np.zeros((2, 2)), "expected a Keras model, got ndarray"),
        (_subclassed, "is a subclassed Keras model .* build it as a Functional or Sequential model"),
        (_vector_model, r"input must be images \[batch, H, W, C\]"),
        (_two_inputs, "one input, it has 2"),
    ],
)
def test_not_an_image_classifier(tmp_path, make, message):
    model = make()
    assert re.search(message, _attempt(tmp_path, lambda: summary.checkpoint(model)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"class_names": ["a"]}, "has 2 classes but 1 class_names"),
        ({"class_names": "ab"}, "list of strings"),
        ({"class_names": [1, 2]}, "list of strings"),
        ({"preprocessing": {"type": "normalize"}}, "one of none, scale, keras_app"),
        ({"preprocessing": "vgg16"}, "must be a dict"),
        ({"preprocessing": {"type": "scale", "scale": float("nan")}}, "finite numbers"),
        ({"preprocessing": {"type": "keras_app", "module": "nope"}}, "no module 'nope'"),
        ({"preprocessing": {"type": "keras_app", "module": "../x"}}, "needs 'module'"),
        ({"step": -1}, "non-negative integer"),
        ({"step": 1.5}, "non-negative integer"),
    ],
)
def test_bad_checkpoint_arguments(tmp_path, kwargs, message):
    assert message in _attempt(tmp_path, lambda: summary.checkpoint(tiny_dense(), **kwargs))


def test_no_step_anywhere(tmp_path):
    run_dir = str(tmp_path / "run")
    writer = summary.create_file_writer(run_dir)
    with writer.as_default(), pytest.raises(XaiError, match="no step"):
        summary.checkpoint(tiny_dense())
    with writer.as_default(), pytest.raises(XaiError, match="no step"):
        summary.samples("val", GOOD_IMAGES)
    writer.close()
    _assert_nothing_logged(str(tmp_path), run_dir)


@pytest.mark.parametrize(
    "images, message",
    [
        (np.array([[[np.nan]]], np.float32), "NaN or infinite"),
        (np.full((2, 4, 4, 1), np.inf), "NaN or infinite"),
        (np.full((1, 2, 2), 1e300), "NaN or infinite"),  # overflows float32
        (np.zeros((2, 4, 4, 1, 1)), "not shape"),
        (np.zeros(5), "not shape"),
        (np.zeros((2, 4, 4, 2)), "C 1 or 3"),
        (np.zeros((0, 4, 4, 1)), "not shape"),
        (np.array([["a", "b"], ["c", "d"]]), "not dtype <U1"),
        (np.zeros((2, 4, 4), np.complex64), "not dtype complex64"),
        (np.zeros((2, 4, 4), bool), "not dtype bool"),
        ([np.zeros((4, 4)), np.zeros((5, 5))], "one array of equal-sized images"),
        (np.full((1, 2, 2), 256, np.int32), "0..255"),
        (np.full((1, 2, 2), -1, np.int8), "0..255"),
    ],
)
def test_bad_images(tmp_path, images, message):
    assert message in _attempt(tmp_path, lambda: summary.samples("val", images))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"labels": [0, 1]}, "one integer per image (3)"),
        ({"labels": [0, 1, 2, 0]}, "one integer per image (3)"),
        ({"labels": [0, 1, 2], "class_names": ["a", "b"]}, "labels must lie in 0..1, found 0..2"),
        ({"labels": [0, -1, 1]}, "found -1..1"),
        ({"labels": [0.5, 1, 1]}, "whole numbers"),
        ({"labels": ["cat", "dog", "cat"]}, "labels must be integers"),
        ({"class_names": ["a", 2]}, "list of strings"),
        ({"ids": ["a", "a", "b"]}, "unique"),
        ({"ids": ["a", "b"]}, "3 strings or integers"),
        ({"ids": [1.5, 2.5, 3.5]}, "3 strings or integers"),
    ],
)
def test_bad_labels_and_ids(tmp_path, kwargs, message):
    assert message in _attempt(tmp_path, lambda: summary.samples("val", GOOD_IMAGES, **kwargs))


def test_logdir_under_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(XaiError, match="cannot write to"):
        summary.create_file_writer(str(blocker / "run"))
    writer = tf.summary.create_file_writer(str(tmp_path / "real"))
    with writer.as_default(step=1), pytest.raises(XaiError, match="cannot write to"):
        summary.checkpoint(tiny_dense(), logdir=str(blocker / "run"))
    assert blocker.read_text() == "not a folder"
    assert xai_tensors(multiplexer_provider(str(tmp_path))) == {}


def test_logdir_under_a_read_only_folder(tmp_path):
    with pytest.raises(XaiError, match="cannot write to /proc/tb_xai_run"):
        summary.create_file_writer("/proc/tb_xai_run")  # /proc refuses new entries, even to root


def test_run_whose_plugin_folder_is_blocked(tmp_path):
    run_dir = tmp_path / "run"
    writer = summary.create_file_writer(str(run_dir))
    (run_dir / "plugins").write_text("in the way")
    with writer.as_default(step=1):
        with pytest.raises(XaiError, match="cannot write to"):
            summary.checkpoint(tiny_cnn())
        with pytest.raises(XaiError, match="cannot write to"):
            summary.samples("val", GOOD_IMAGES)
    writer.close()
    assert (run_dir / "plugins").read_text() == "in the way"
    assert xai_tensors(multiplexer_provider(str(tmp_path))) == {}
