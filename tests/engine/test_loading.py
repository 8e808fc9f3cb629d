"""load_checkpoint: its own graph, the manifest checks, refusal of code in files, preprocessing."""

import json
import os

import numpy as np
import pytest
from conftest import BACKEND, innvestigate_only, logits, probabilities, small_cnn, write_checkpoint

from tb_xai_plugin import engine
from tb_xai_plugin.engine import checkpoint
from tb_xai_plugin.errors import NotFoundError, XaiError


def keras_probs(keras_model, x):
    """The saving process's own prediction (global graph and Keras session)."""
    return keras_model.predict(x, verbose=0)


@innvestigate_only
def test_loaded_model_predicts_like_the_saved_model_in_its_own_graph(tmp_path):
    import tensorflow as tf

    keras_model = small_cnn(seed=3)
    path, manifest = write_checkpoint(keras_model, tmp_path)
    x = np.random.default_rng(1).uniform(size=(4, 16, 16, 3)).astype(np.float32)
    model = engine.load_checkpoint(path, manifest)
    assert model.graph is not tf.compat.v1.get_default_graph()
    assert model.session.graph is model.graph
    np.testing.assert_allclose(model.run(model.probs, {model.input: x}), keras_probs(keras_model, x), rtol=1e-5, atol=1e-6)
    logits = model.run(model.logits_model.output, {model.input: x})
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), keras_probs(keras_model, x), rtol=1e-4, atol=1e-6)
    # The caller's Keras session is untouched: its model still predicts in the default graph.
    np.testing.assert_allclose(keras_probs(keras_model, x), keras_model.predict(x, verbose=0))
    assert model.input_shape == (16, 16, 3) and model.num_classes == 4 and model.layers == manifest["layers"]


@pytest.mark.stack("keras3")
def test_the_native_backend_predicts_like_the_saved_model_and_leaves_eager_on(tmp_path):
    import tensorflow as tf

    keras_model = small_cnn(seed=3)
    path, manifest = write_checkpoint(keras_model, tmp_path)
    x = np.random.default_rng(1).uniform(size=(4, 16, 16, 3)).astype(np.float32)
    model = engine.load_checkpoint(path, manifest)
    assert model.backend == "native" and tf.executing_eagerly()
    np.testing.assert_allclose(probabilities(model, x), keras_probs(keras_model, x), rtol=1e-5, atol=1e-6)
    z = logits(model, x)
    np.testing.assert_allclose(np.exp(z) / np.exp(z).sum(1, keepdims=True), keras_probs(keras_model, x), rtol=1e-4, atol=1e-6)
    assert model.keras_model.layers[-1].activation.__name__ == "softmax"  # the loaded model itself is unchanged
    assert model.input_shape == (16, 16, 3) and model.num_classes == 4 and model.layers == manifest["layers"]


def test_two_checkpoints_live_apart(tmp_path):
    a = engine.load_checkpoint(*write_checkpoint(small_cnn(seed=1), tmp_path / "a"))
    b = engine.load_checkpoint(*write_checkpoint(small_cnn(seed=2), tmp_path / "b"))
    x = np.ones((1, 16, 16, 3), np.float32)
    if BACKEND == "innvestigate":
        assert a.graph is not b.graph
    assert not np.allclose(probabilities(a, x), probabilities(b, x))


@pytest.mark.stack("keras3")
def test_keras_initializers_draw_at_random_again_after_a_load_and_a_failed_one(tmp_path):
    import keras

    path, manifest = write_checkpoint(small_cnn(seed=3), tmp_path)
    engine.load_checkpoint(path, manifest)  # built with zero draws (the file's weights replace them)
    with pytest.raises(XaiError):
        engine.load_checkpoint(path, dict(manifest, weights_sha256="0" * 64))
    for initializer in (keras.initializers.GlorotUniform(), keras.initializers.HeNormal(), keras.initializers.TruncatedNormal()):
        assert np.asarray(initializer((8, 8))).std() > 0


def test_weights_that_differ_from_the_manifest_are_refused(tmp_path):
    path, manifest = write_checkpoint(small_cnn(), tmp_path)
    manifest = dict(manifest, weights_sha256="0" * 64)
    with pytest.raises(XaiError, match="weights do not match the manifest"):
        engine.load_checkpoint(path, manifest)


def test_missing_corrupt_and_mismatched_files(tmp_path):
    path, manifest = write_checkpoint(small_cnn(), tmp_path)
    with pytest.raises(NotFoundError):
        engine.load_checkpoint(str(tmp_path / "nope.h5"), manifest)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(XaiError, match="unreadable"):
        engine.load_checkpoint(str(broken), manifest)
    with pytest.raises(XaiError, match="format"):
        engine.load_checkpoint(path, dict(manifest, format="pickle"))
    with pytest.raises(XaiError, match="input"):
        engine.load_checkpoint(path, dict(manifest, input_shape=[8, 8, 3]))
    with pytest.raises(XaiError, match="classes"):
        engine.load_checkpoint(path, dict(manifest, num_classes=5))


def lambda_model():
    """A model with a Lambda layer: its file carries Python bytecode."""
    import tensorflow as tf

    inputs = tf.keras.Input((4, 4, 1))
    h = tf.keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    h = tf.keras.layers.Flatten()(h)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(2, activation="softmax")(h))


def test_lambda_layers_are_refused_unless_allowed(tmp_path):
    path, manifest = write_checkpoint(lambda_model(), tmp_path)
    with pytest.raises(XaiError, match="'double' is a Lambda layer"):
        engine.load_checkpoint(path, manifest)
    model = engine.load_checkpoint(path, manifest, allow_unsafe=True)
    assert probabilities(model, np.ones((1, 4, 4, 1), np.float32)).shape == (1, 2)


def rename_third_layer_class(path, fmt, class_name):
    """Rewrite the model config stored in an .h5 or .keras file with layer 2's class renamed."""
    import h5py

    if fmt == "h5":
        with h5py.File(path, "r+") as f:
            config = json.loads(f.attrs["model_config"])
            config["config"]["layers"][2]["class_name"] = class_name
            f.attrs["model_config"] = json.dumps(config)
        return
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(entries["config.json"])
    config["config"]["layers"][2]["class_name"] = class_name
    entries["config.json"] = json.dumps(config).encode("utf-8")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_unknown_custom_layers_are_refused_before_loading(tmp_path):
    path, manifest = write_checkpoint(small_cnn(), tmp_path)
    rename_third_layer_class(path, manifest["format"], "EvilLayer")
    with pytest.raises(XaiError, match="unknown type 'EvilLayer'"):
        engine.load_checkpoint(path, manifest)


@innvestigate_only
def test_savedmodel_loads_too(tmp_path):
    keras_model = small_cnn(seed=4)
    _, manifest = write_checkpoint(keras_model, tmp_path)
    directory = str(tmp_path / "saved")
    keras_model.save(directory, save_format="tf")
    model = engine.load_checkpoint(directory, dict(manifest, format="savedmodel"))
    x = np.full((2, 16, 16, 3), 0.5, np.float32)
    np.testing.assert_allclose(model.run(model.probs, {model.input: x}), keras_probs(keras_model, x), rtol=1e-5, atol=1e-6)


def test_preprocessing_types(cnn):
    images = np.random.default_rng(0).integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    np.testing.assert_allclose(cnn.preprocess(images), images / 255.0, rtol=1e-6)
    assert cnn.preprocess(images[0]).shape == (1, 16, 16, 3)
    assert checkpoint.preprocess_array(images.astype(np.float32), {"type": "none"}).dtype == np.float32
    # VGG16's "caffe" preprocessing: RGB -> BGR, minus the ImageNet mean per channel.
    vgg = checkpoint.preprocess_array(images.astype(np.float32), {"type": "keras_app", "module": "vgg16"})
    np.testing.assert_allclose(vgg[..., 0], images[..., 2] - 103.939, atol=1e-3)
    np.testing.assert_allclose(vgg[..., 2], images[..., 0] - 123.68, atol=1e-3)
    # The caller's images are never changed in place.
    before = images.copy()
    cnn.preprocess(images)
    np.testing.assert_array_equal(images, before)
    for bad in ({"type": "keras_app", "module": "os"}, {"type": "keras_app", "module": "__init__"}, {"type": "magic"}, None):
        with pytest.raises(XaiError):
            checkpoint.preprocess_array(images.astype(np.float32), bad)
    with pytest.raises(XaiError, match="shape"):
        cnn.preprocess(np.zeros((2, 8, 8, 3)))


def test_layer_output_names_the_known_layers(cnn):
    if BACKEND == "innvestigate":
        assert cnn.layer_output("conv2").shape.as_list() == [None, 8, 8, 8]
        with pytest.raises(XaiError, match="unknown layer 'nope'.*conv1"):
            cnn.layer_output("nope")
        return
    assert list(cnn.layer_and_logits("conv2").outputs[0].shape) == [None, 8, 8, 8]
    with pytest.raises(XaiError, match="unknown layer 'nope'.*conv1"):
        cnn.layer_and_logits("nope")


def test_bounded_cache_keeps_the_most_recent():
    cache = checkpoint.BoundedCache(maxsize=2)
    cache["a"], cache["b"] = 1, 2
    assert cache["a"] == 1  # refreshes a
    cache["c"] = 3
    assert list(cache) == ["a", "c"]
    assert cache.get_or_build("d", lambda: 4) == 4 and "a" not in cache


def test_predict_and_activation_means_match_keras(cnn, cnn_checkpoint, images):
    import tensorflow as tf

    keras_model = tf.keras.models.load_model(cnn_checkpoint[0], compile=False)
    x = images / np.float32(255.0)
    probs = keras_probs(keras_model, x)
    out = engine.predict(cnn, images, top_k=3, return_probs=True, batch_size=3)
    np.testing.assert_allclose(out["probs"], probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["top_classes"], np.argsort(-probs, axis=1, kind="stable")[:, :3])
    np.testing.assert_allclose(out["top_scores"], np.sort(probs, axis=1)[:, ::-1][:, :3], rtol=1e-5, atol=1e-6)
    conv2 = tf.keras.Model(keras_model.input, keras_model.get_layer("conv2").output).predict(x, verbose=0)
    np.testing.assert_allclose(engine.activation_means(cnn, images, "conv2"), conv2.mean(axis=(1, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(engine.activation_means(cnn, images, "conv2", neuron=5, batch_size=2), conv2[..., 5].mean(axis=(1, 2)), rtol=1e-5)
    assert engine.predict(cnn, images, top_k=9)["top_classes"].shape == (8, 4)  # capped at the class count
    for bad in (dict(top_k=0), dict(top_k=2.5), dict(top_k=True), dict(batch_size=0)):
        with pytest.raises(XaiError):
            engine.predict(cnn, images, **bad)
    for layer, neuron in (("nope", None), ("conv2", 8), ("conv2", -1), ("conv2", 1.5)):
        with pytest.raises(XaiError):
            engine.activation_means(cnn, images, layer, neuron)


def test_engine_package_imports_without_tensorflow():
    import subprocess
    import sys

    code = "import sys; from tb_xai_plugin import engine; engine.describe_methods(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=dict(os.environ))
    assert out.stdout.strip() == "False"
