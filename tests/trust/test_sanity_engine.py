"""Cascading randomization (engine.sanity) on logged tiny models of the current stack's native backend."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf

from tb_xai_plugin import files
from tb_xai_plugin.engine import agreement, attribute, backends, sanity
from tb_xai_plugin.errors import XaiError
from tests.plugin.conftest import SCALE, checkpoint_file, cnn_images, write_run


def rank_tolerance(n=28 * 28):
    """|d rho| allowed between two float32 runs of the same maps: n swaps of adjacent ranks, each 12 / (n (n^2 - 1)) of rho."""
    return n * 12.0 / (n * (n * n - 1.0))


def log_and_load(root, run, keras_model):
    """keras_model logged with the summary ops under root/run, loaded back by its backend."""
    write_run(root, run, {1: keras_model}, preprocessing=SCALE)
    manifest = files.checkpoint_manifests(os.path.join(root, run))[0]
    return backends.load_checkpoint(checkpoint_file(os.path.join(root, run), 1), manifest)


def nested_model():
    """A Dense head over a nested Sequential base of two convolutions (with BatchNormalization between), seeded."""
    tf.keras.utils.set_random_seed(2)
    base = tf.keras.Sequential(
        [tf.keras.Input((28, 28, 1)), tf.keras.layers.Conv2D(3, 3, name="c1"), tf.keras.layers.BatchNormalization(name="bn"),
         tf.keras.layers.Conv2D(2, 3, name="c2")], name="base")  # fmt: skip
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(base(inputs))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax", name="head")(x))


def test_stages_group_the_layers_from_the_top_and_end_with_all_of_them():
    assert sanity.stage_plan(3, 8) == [1, 2, 3]
    assert sanity.stage_plan(10, 4) == [3, 5, 8, 10]
    assert sanity.stage_plan(1, 1) == [1]


def test_weighted_layers_flatten_nested_models_in_order():
    assert [layer.name for layer in sanity.weighted_layers(nested_model())] == ["c1", "bn", "c2", "head"]


def test_a_layers_random_weights_depend_only_on_seed_and_position():
    layer = nested_model().get_layer("base").get_layer("bn")
    kernel_layer = nested_model().get_layer("head")
    kernel, bias = kernel_layer.get_weights()
    kernel_layer.set_weights([np.arange(kernel.size, dtype=np.float32).reshape(kernel.shape), bias + 1])
    once, again = sanity.random_weights(kernel_layer, 3, 0), sanity.random_weights(kernel_layer, 3, 0)
    for a, b, w in zip(once, again, kernel_layer.get_weights()):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.sort(a.ravel()), np.sort(w.ravel()))  # permute: the same values
    assert not np.array_equal(once[0], kernel_layer.get_weights()[0])
    assert not np.array_equal(sanity.random_weights(kernel_layer, 4, 0)[0], once[0])
    kernel, bias = sanity.random_weights(kernel_layer, 3, 0, mode="init")
    limit = math.sqrt(6.0 / (kernel.shape[0] + kernel.shape[1]))
    assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > 0.5 * limit and not bias.any()
    gamma, beta, mean, variance = sanity.random_weights(layer, 1, 0, mode="init")
    assert (gamma == 1).all() and not beta.any() and not mean.any() and (variance == 1).all()


def test_maps_after_full_randomization_are_those_of_the_randomized_model_saved_and_loaded_again(tmp_path):
    """LRP-epsilon through a nested base with BatchNormalization (folded by the LRP canonizer): no derived weight survives."""
    root, method = str(tmp_path), "lrp.epsilon"
    model = log_and_load(root, "trained", nested_model())
    images = cnn_images()[0][:3]
    trained = attribute(model, method, images)
    before = model.probabilities(model.preprocess(images))
    result = sanity.cascading_randomization(model, [(method, {})], images, seed=5)
    assert result["randomized"][-1] == len(sanity.weighted_layers(model.keras_model))
    reloaded = log_and_load(root, "random", model.keras_model)  # the private copy, fully randomized, as a new checkpoint
    maps = np.stack([attribute(reloaded, method, images[[i]], target={"kind": "class", "index": int(c)}).maps[0]
                     for i, c in enumerate(trained.targets)])  # fmt: skip
    expected = agreement.rank_correlation(trained.maps, maps)
    np.testing.assert_allclose(result["methods"][0]["correlations"][-1], expected, rtol=0, atol=rank_tolerance())
    assert not np.allclose(before, model.probabilities(model.preprocess(images)))


def test_an_unknown_randomization_is_refused():
    with pytest.raises(XaiError, match="randomization must be one of"):
        sanity.cascading_randomization(None, [], np.zeros((1, 28, 28, 1)), mode="shuffle")
