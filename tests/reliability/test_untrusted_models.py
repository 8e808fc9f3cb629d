"""Untrusted checkpoints: a Lambda layer's code never runs unless --xai_allow_unsafe_models, custom
objects are refused, a model whose input does not fit the sample set is refused; each cell says why."""

import os

import pytest
import tensorflow as tf

from tb_xai_plugin import summary
from tests.plugin.conftest import CLASSES, SCALE, Served, body_of, cnn_images, tiny_cnn


class Doubling(tf.keras.layers.Layer):
    """A custom layer (a class the loader does not know)."""

    def call(self, inputs):
        return inputs * 2.0


def lambda_model(marker):
    """tiny CNN whose Lambda layer writes `marker` whenever Keras builds it (i.e. runs the stored code)."""
    touch = eval("lambda x: (open(%r, 'a').close(), x)[1]" % marker)  # the path is a constant of the stored code
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Lambda(touch, name="touch")(inputs)
    x = tf.keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(x))


def custom_model():
    """28x28x1 -> Doubling (custom) -> flatten -> dense(3)."""
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Flatten()(Doubling(name="doubling")(inputs))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(x))


def rgb_model():
    """32x32x3 -> conv -> pool -> dense(3): does not fit 28x28x1 samples."""
    inputs = tf.keras.Input((32, 32, 3))
    x = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(4, 3)(inputs))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(x))


def write_untrusted(logdir, marker, runs=("lambda", "custom", "rgb", "plain")):
    """Runs of `runs` at step 1 ('plain' with the samples 'val'); the marker is removed once they are logged."""
    images, labels = cnn_images(4)
    models = {"lambda": lambda: lambda_model(marker), "custom": custom_model, "rgb": rgb_model, "plain": lambda: tiny_cnn(1)}
    for run in runs:
        writer = summary.create_file_writer(os.path.join(logdir, run))
        with writer.as_default():
            if run == "plain":
                summary.samples("val", images, step=0, labels=labels, class_names=CLASSES)
            summary.checkpoint(models[run](), step=1, class_names=CLASSES, preprocessing=SCALE)
        writer.close()
    if os.path.exists(marker):
        os.remove(marker)  # written while the model was built here, in the test
    return logdir


@pytest.fixture(scope="module")
def untrusted(tmp_path_factory):
    """A logdir with runs 'lambda', 'custom', 'rgb' and 'plain'; and the marker's path."""
    root = tmp_path_factory.mktemp("untrusted")
    marker = str(root / "code-ran")
    return write_untrusted(str(root / "logdir"), marker), marker


def body(runs, route="attributions"):
    """A body for `runs` (step 1) on the plain run's samples."""
    out = {"models": [{"run": r, "step": 1} for r in runs], "samples": {"run": "plain", "name": "val"}, "indices": [0, 1]}
    return dict(out, methods=[{"id": "gradient"}]) if route == "attributions" else out


def test_a_lambda_layer_never_runs_by_default(untrusted, tmp_path):
    logdir, marker = untrusted
    server = Served(logdir, str(tmp_path / "cache"))
    try:
        cells = body_of(server.post("attributions", body(["lambda", "plain"])))["cells"]
        assert [c["ok"] for c in cells] == [False, True]
        assert "Lambda layer, which runs code stored in the file; refused" in cells[0]["error"]
        assert "--xai_allow_unsafe_models" in cells[0]["error"]
        models = body_of(server.post("predictions", body(["lambda"], "predictions")))["models"]
        assert models[0]["ok"] is False and "Lambda" in models[0]["error"]
        layers = server.get("layers", run="lambda", step="1")  # read from the manifest: nothing loaded
        assert layers.status_code == 200
        assert not os.path.exists(marker)
    finally:
        server.close()


def test_a_lambda_layer_runs_only_with_the_flag(untrusted, tmp_path):
    logdir, marker = untrusted
    server = Served(logdir, str(tmp_path / "cache"), xai_allow_unsafe_models=True)
    try:
        models = body_of(server.post("predictions", body(["lambda"], "predictions")))["models"]
        assert models[0]["ok"] is True, models[0]
        assert os.path.exists(marker)  # the marker does detect the stored code running
    finally:
        server.close()
        if os.path.exists(marker):
            os.remove(marker)


def test_custom_objects_and_mismatched_inputs_are_refused(untrusted, tmp_path):
    logdir, marker = untrusted
    server = Served(logdir, str(tmp_path / "cache"), xai_allow_unsafe_models=True)
    try:
        cells = body_of(server.post("attributions", body(["custom", "rgb", "plain"])))["cells"]
        assert [c["ok"] for c in cells] == [False, False, True]
        assert "unknown type 'Doubling' (a custom object); refused" in cells[0]["error"]
        assert cells[1]["error"] == "model rgb@1 takes images of shape [32, 32, 3]; sample set 'val' holds [28, 28, 1]: refused"
        assert server.plugin.pool.stats["submitted"] == 2  # custom (refused by its worker) and plain; rgb never sent
        models = body_of(server.post("predictions", body(["rgb", "plain"], "predictions")))["models"]
        assert [m["ok"] for m in models] == [False, True] and "[32, 32, 3]" in models[0]["error"]
    finally:
        server.close()
