"""Logging Keras 3 models: nested base networks and preprocessing layers, through the ops and `tb-xai import`.

Runs in .venv (TensorFlow 2.21, Keras 3). Each checkpoint must come back from its `.keras` file
(safe_mode=True) with the manifest's weights checksum, layer names and the model's predictions.
"""

import os

import keras
import numpy as np
import pytest

from tb_xai_plugin import cli, files, model_info, summary

SIZE = (32, 32, 3)


def nested_model():
    """Rescaling, Normalization, RandomFlip, RandomRotation, then MobileNetV2 (no top, no weights) nested, then a head."""
    rng = np.random.default_rng(0)
    normalization = keras.layers.Normalization(name="normalize")
    normalization.adapt(rng.random((16,) + SIZE, dtype=np.float32))
    inputs = keras.Input(SIZE, name="pixels")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inputs)
    x = normalization(x)
    x = keras.layers.RandomFlip("horizontal", name="flip")(x)
    x = keras.layers.RandomRotation(0.1, name="rotate")(x)
    x = keras.applications.MobileNetV2(input_shape=SIZE, include_top=False, weights=None)(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(4, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="nested")


@pytest.fixture(scope="module")
def trained():
    """(model, images): the nested model after one step of Adam on random images, and 4 images to predict."""
    rng = np.random.default_rng(1)
    model = nested_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(rng.integers(0, 256, (8,) + SIZE).astype(np.float32), rng.integers(0, 4, 8), epochs=1, verbose=0)
    return model, rng.integers(0, 256, (4,) + SIZE).astype(np.float32)


def _check_round_trip(path, manifest, model, images):
    """The file at `path` loads safely with the manifest's checksum and layers and predicts as `model` does."""
    loaded = keras.models.load_model(path, compile=False, safe_mode=True)
    assert model_info.weights_checksum(loaded.get_weights()) == manifest["weights_sha256"]
    assert model_info.describe_layers(loaded) == manifest["layers"]
    # Same weights, same kernels, same process: equal up to a few float32 roundings.
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=0, atol=1e-6)


def test_a_nested_model_with_preprocessing_layers_is_logged_as_keras(trained, tmp_path):
    model, images = trained
    optimizer = model.optimizer
    writer = summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=1):
        assert summary.checkpoint(model, class_names=["a", "b", "c", "d"])
    (manifest,) = files.checkpoint_manifests(str(tmp_path))
    assert manifest["format"] == "keras" and manifest["file"] == "step-000000001.keras"
    assert manifest["versions"]["keras"] == keras.__version__ and manifest["versions"]["keras_backend"] == "tensorflow"
    types = [layer["type"] for layer in manifest["layers"] if "/" not in layer["name"]]
    assert types == ["InputLayer", "Rescaling", "Normalization", "RandomFlip", "RandomRotation", "Functional",
                     "GlobalAveragePooling2D", "Dense"]
    base = next(layer["name"] for layer in manifest["layers"] if layer["type"] == "Functional")
    inner = [layer for layer in manifest["layers"] if layer["name"].startswith(base + "/")]
    own = [layer for layer in model.get_layer(base).layers if type(layer).__name__ != "InputLayer"]
    assert [layer["name"] for layer in inner] == [base + "/" + layer.name for layer in own]  # named by path
    assert model_info.default_layer(manifest["layers"]).startswith(base + "/")
    assert manifest["output_activation"] == "softmax" and manifest["input_shape"] == list(SIZE)
    path = os.path.join(files.checkpoints_dir(str(tmp_path)), manifest["file"])
    _check_round_trip(path, manifest, model, images)
    assert model.optimizer is optimizer  # put back after the save
    weight_bytes = sum(w.nbytes for w in model.get_weights())
    assert os.path.getsize(path) < 1.2 * weight_bytes  # the optimizer's slots (2x the weights for Adam) left out


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_tb_xai_import_reads_keras3_files(trained, tmp_path, suffix):
    model, images = trained
    saved = str(tmp_path / ("model" + suffix))
    model.save(saved)
    assert cli.main(["import", "--logdir", str(tmp_path / "logs"), "--run", "r", "--model", saved]) == 0
    run_dir = str(tmp_path / "logs" / "r")
    (manifest,) = files.checkpoint_manifests(run_dir)
    assert manifest["format"] == "keras" and manifest["weights_sha256"] == model_info.weights_checksum(model.get_weights())
    _check_round_trip(os.path.join(files.checkpoints_dir(run_dir), manifest["file"]), manifest, model, images)
