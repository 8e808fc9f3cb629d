"""Native DeepLIFT (rescale): parity with the iNNvestigate backend on the same Keras 2 weights, summation to
delta through every rule (batch norm, tanh / sigmoid branches, ELU, nested base models), refusals.

Runs in the Keras 3 stack (.venv); the iNNvestigate backend's maps come from .venv-innvestigate in a
subprocess (innvestigate_maps.py), once for the module.
"""

import numpy as np
import pytest
from conftest import logits, method, write_checkpoint

import innvestigate_maps
import parity_models
from tb_xai_plugin import engine
from tb_xai_plugin.engine.backends.native import deeplift, walk
from tb_xai_plugin.errors import XaiError

pytestmark = pytest.mark.stack("keras3")  # the native backend runs in the Keras 3 stack (.venv)

DEEPLIFT = method("deeplift")
EPS = float(np.finfo(np.float32).eps)
REFERENCES = ("zero", "black", "blur", "image_mean")
SCALE = {"type": "scale", "scale": 1 / 255.0, "offset": 0.0}
PARITY_MODELS = {
    "chain": {"build": "parity_models:chain_cnn", "kwargs": {"seed": 1}, "preprocessing": SCALE},
    "mixed": {"build": "parity_models:mixed_net", "kwargs": {"seed": 2}},
}


def parity_images():
    """{checkpoint name: images} for the parity models: uint8 16x16x3 and float 10x10x2."""
    rng = np.random.default_rng(7)
    return {"chain": rng.integers(0, 256, (5, 16, 16, 3)).astype(np.uint8), "mixed": rng.normal(size=(5, 10, 10, 2)).astype(np.float32)}


def parity_jobs():
    """Every reference on both models, for target class 1 and for each image's predicted class."""
    targets = {"c1": {"kind": "class", "index": 1}, "pred": {"kind": "predicted"}}
    return [
        {"id": "%s-%s-%s" % (name, reference, t), "checkpoint": name, "method": "deeplift", "images": name + ".npy",
         "params": {"reference": reference, "blur_sigma": 1.5}, "target": target}
        for name in PARITY_MODELS for reference in REFERENCES for t, target in targets.items()
    ]  # fmt: skip


@pytest.fixture(scope="module")
def innvestigate_reference(tmp_path_factory):
    """(checkpoints {name: (path, manifest)}, maps {job id: raw maps}) from the iNNvestigate backend (Keras 2 .h5)."""
    directory = tmp_path_factory.mktemp("innvestigate")
    for name, images in parity_images().items():
        np.save(directory / (name + ".npy"), images)
    return innvestigate_maps.run(directory, PARITY_MODELS, parity_jobs())


def test_matches_the_innvestigate_backend_on_the_same_keras2_weights(innvestigate_reference):
    checkpoints, expected = innvestigate_reference
    models = {name: engine.load_checkpoint(*checkpoint) for name, checkpoint in checkpoints.items()}
    images = parity_images()
    for job in parity_jobs():
        model = models[job["checkpoint"]]
        assert model.backend == "native" and model.manifest["format"] == "h5"  # Keras 2 weights, read by Keras 3
        got = engine.attribute(model, "deeplift", images[job["checkpoint"]], params=job["params"], target=job["target"]).raw
        want = expected[job["id"]]
        assert np.abs(want).max() > 1e-3, job["id"]
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), job["id"]


def accumulation_length(keras_model):
    """Input size plus every linear step's fan-in: how many float32 roundings a contribution passes, at most."""
    steps = walk.Walk(keras_model).steps
    fan_ins = [int(np.prod(step.kernels[0].shape[:-1])) for step in steps if step.kind == "linear"]
    return int(np.prod(keras_model.input_shape[1:])) + sum(fan_ins) + len(steps)


def assert_sums_to_delta(model, x, targets, params):
    """sum of each map == f_t(x) - f_t(x0), within float32 rounding of the terms involved; returns the maps."""
    params = DEEPLIFT.validate_params(params)
    maps = DEEPLIFT.compute(model, x, targets, params, None, None, None)
    rows = np.arange(len(x))
    at_x, at_x0 = logits(model, x)[rows, targets], logits(model, deeplift.reference(model, x, params))[rows, targets]
    sums = maps.reshape(len(x), -1).astype(np.float64).sum(axis=1)
    magnitude = np.abs(maps).reshape(len(x), -1).sum(axis=1) + np.abs(at_x) + np.abs(at_x0)
    assert np.all(np.abs(sums - (at_x - at_x0)) <= EPS * accumulation_length(model.keras_model) * magnitude)
    assert np.abs(at_x - at_x0).min() > 1e-3  # the check is not trivially 0 == 0
    return maps


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """mixed_net (batch norm, tanh and sigmoid branches added, average pooling, ELU) as a Keras 3 checkpoint."""
    return engine.load_checkpoint(*write_checkpoint(parity_models.mixed_net(seed=3), tmp_path_factory.mktemp("mixed")))


@pytest.mark.parametrize("reference", REFERENCES)
def test_sums_to_delta_through_every_rule(mixed, cnn, images, reference):
    x = np.random.default_rng(4).normal(size=(6, 10, 10, 2)).astype(np.float32)
    params = {"reference": reference, "blur_sigma": 1.5}
    assert_sums_to_delta(mixed, x, np.arange(6) % 3, params)
    assert_sums_to_delta(cnn, cnn.preprocess(images), np.arange(8) % 4, params)  # max-pooling of ReLU outputs


def nested_net():
    """A base network (conv-relu-pool-conv-sigmoid) nested in a model that adds a dense head."""
    import keras

    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(inputs)
    h = keras.layers.MaxPooling2D(2)(h)
    base = keras.Model(inputs, keras.layers.Conv2D(2, 3, activation="sigmoid")(h), name="base")
    outer = keras.Input((8, 8, 1))
    h = keras.layers.GlobalAveragePooling2D()(base(outer))
    return parity_models.weighted(keras.Model(outer, keras.layers.Dense(3, activation="softmax")(h)), seed=5)


def sequential_net():
    """The same layers as nested_net's, in one Sequential model."""
    import keras

    layers = keras.layers
    return parity_models.weighted(keras.Sequential([
        keras.Input((8, 8, 1)), layers.Conv2D(3, 3, padding="same", activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(2, 3, activation="sigmoid"), layers.GlobalAveragePooling2D(), layers.Dense(3, activation="softmax"),
    ]), seed=5)  # fmt: skip


@pytest.mark.parametrize("build", [nested_net, sequential_net])
def test_sums_to_delta_through_a_nested_base_network_and_a_sequential_model(tmp_path, build):
    model = engine.load_checkpoint(*write_checkpoint(build(), tmp_path))
    x = np.random.default_rng(6).normal(size=(4, 8, 8, 1)).astype(np.float32)
    targets = np.arange(4) % 3
    before = [logits(model, x)] + model.keras_model.get_weights()
    maps = assert_sums_to_delta(model, x, targets, {"reference": "zero"})
    for was, now in zip(before, [logits(model, x)] + model.keras_model.get_weights()):
        np.testing.assert_array_equal(now, was)  # the model is left as it was
    assert not np.allclose(maps, x * gradient(model, x, targets), atol=1e-3 * np.abs(maps).max())  # the rules took effect inside


def gradient(model, x, targets):
    """d logit_t / dx [N, H, W, C]: the plain gradient, which DeepLIFT's multipliers replace."""
    import tensorflow as tf

    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        chosen = tf.gather(model.logits_model(x), targets, axis=1, batch_dims=1)
    return tape.gradient(chosen, x).numpy()


def test_a_layer_outside_the_rescale_rule_is_refused_with_its_name(tmp_path):
    import keras

    inputs = keras.Input((4, 4, 1))
    h = keras.layers.LayerNormalization(name="norm")(keras.layers.Flatten()(inputs))
    model = engine.load_checkpoint(*write_checkpoint(keras.Model(inputs, keras.layers.Dense(2)(h)), tmp_path))
    assert "LayerNormalization" in engine.applicable_methods(model)["deeplift"]["reason"]
    with pytest.raises(XaiError, match="LayerNormalization"):
        engine.attribute(model, "deeplift", np.zeros((1, 4, 4, 1), np.float32))
