"""Activation maps of a layer or one channel, against the layer's output computed directly."""

from conftest import method, layer_output, built_size, keras_context
import numpy as np
import pytest
import reference as ref

import patch_task
from tb_xai_plugin import engine
from tb_xai_plugin.engine.attribution import attribute
from tb_xai_plugin.errors import XaiError

ACTIVATION = method("activation")


@pytest.fixture(scope="module")
def x(cnn, images):
    """Four of the shared random images, preprocessed for small_cnn."""
    return cnn.preprocess(images[:4])


def run(model, x, layer, neuron, targets=None):
    """The activation method on `x`; the targets default to class 0 for every image."""
    targets = np.zeros(len(x), np.int64) if targets is None else targets
    return ACTIVATION.compute(model, x, targets, {}, layer, neuron, None)


def test_a_neuron_map_equals_the_channel_computed_by_hand(cnn, x):
    with keras_context(cnn):
        kernel, bias = (w.astype(np.float64) for w in cnn.keras_model.get_layer("conv1").get_weights())
    maps = run(cnn, x, "conv1", 4)
    expected = [ref.relu(ref.conv2d(ref.pad_same_3x3(image), kernel, bias))[..., 4] for image in x]
    assert maps.shape == (4, 16, 16)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-4)


def test_a_smaller_layer_is_upsampled_bilinearly_to_the_input(cnn, x):
    outputs = layer_output(cnn, "conv2", x)  # [4, 8, 8, 8]
    neuron = run(cnn, x, "conv2", 7)
    mean = run(cnn, x, "conv2", None)
    np.testing.assert_allclose(neuron, [ref.resize_bilinear(o[..., 7], 16, 16) for o in outputs], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(mean, [ref.resize_bilinear(o.mean(-1), 16, 16) for o in outputs], rtol=1e-4, atol=1e-5)
    assert not np.allclose(neuron, mean)


def test_the_default_layer_is_the_last_convolution(cnn, x):
    np.testing.assert_array_equal(run(cnn, x, None, 2), run(cnn, x, "conv2", 2))


def test_the_target_is_ignored(cnn, x):
    np.testing.assert_array_equal(run(cnn, x, "conv1", None), run(cnn, x, "conv1", None, np.full(4, 3)))


def test_a_second_call_builds_nothing_in_the_graph(cnn, x):
    run(cnn, x, "pool1", 1)
    ops = built_size(cnn)
    run(cnn, x[:1], "pool1", 1)
    assert built_size(cnn) == ops


@pytest.mark.parametrize(
    "layer, neuron, message",
    [
        ("conv2", 8, r"\[0, 8\)"),
        ("conv2", -1, r"\[0, 8\)"),
        ("conv1", 1.5, "channel of layer"),
        ("no_such_layer", None, "no_such_layer"),
        ("dense1", 0, "spatial"),
        ("flatten", None, "spatial"),
    ],
)
def test_bad_layers_and_neurons_are_refused(cnn, x, layer, neuron, message):
    with pytest.raises(XaiError, match=message):
        run(cnn, x, layer, neuron)


def test_a_trained_detector_fires_on_the_patch(tmp_path_factory):
    model = engine.load_checkpoint(*patch_task.trained_checkpoint(tmp_path_factory.mktemp("patch")))
    images, labels, corners = patch_task.make_images(8, seed=6)
    with_patch = np.flatnonzero(labels)
    for layer in ("conv1", "conv2"):
        maps = run(model, images[with_patch], layer, None)
        for heat, corner in zip(maps, corners[with_patch]):
            peak = np.unravel_index(np.argmax(heat), heat.shape)
            assert patch_task.patch_mask(corner, margin=1)[peak]


def test_through_attribute_the_neuron_is_checked_and_the_maps_are_the_methods_own(cnn, images, x):
    result = attribute(cnn, "activation", images[:4], layer="conv1", neuron=5)
    np.testing.assert_allclose(result.maps, run(cnn, x, "conv1", 5), rtol=1e-5, atol=1e-6)
    with pytest.raises(XaiError):
        attribute(cnn, "activation", images[:4], layer="conv1", neuron=6)
