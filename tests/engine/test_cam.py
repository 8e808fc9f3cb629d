"""Grad-CAM and Guided Grad-CAM against hand computations on a two-conv model with weights set by hand."""

import numpy as np
import pytest
import reference as ref
from conftest import write_checkpoint, method, built_size, probabilities, keras_context

import patch_task
from tb_xai_plugin import engine, model_info
from tb_xai_plugin.engine.attribution import attribute
from tb_xai_plugin.errors import XaiError

GRAD_CAM = method("grad_cam")
GUIDED = method("guided_grad_cam")
TARGETS = np.array([0, 2, 1])


def hand_model():
    """conv1 (3x3 same, relu) -> conv2 (2x2 stride 2, relu) -> global average pool -> dense softmax."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((6, 6, 2))
    h = layers.Conv2D(3, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = layers.Conv2D(4, 2, strides=2, activation="relu", name="conv2")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = layers.Dense(3, activation="softmax", name="probs")(h)
    model = tf.keras.Model(inputs, outputs, name="hand")
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    """(LoadedModel, its weights: k1, b1, k2, b2, wd, bd) of hand_model, saved and loaded by the engine."""
    keras_model = hand_model()
    weights = [w.astype(np.float64) for w in keras_model.get_weights()]
    return engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path_factory.mktemp("hand"))), weights


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    """hand_model's weights with both convolutions inside a nested Sequential model called 'features'."""
    import tensorflow as tf

    layers = tf.keras.layers
    features = tf.keras.Sequential(
        [
            tf.keras.Input((6, 6, 2)),
            layers.Conv2D(3, 3, padding="same", activation="relu", name="conv_a"),
            layers.Conv2D(4, 2, strides=2, activation="relu", name="conv_b"),
        ],
        name="features",
    )
    inputs = tf.keras.Input((6, 6, 2))
    outputs = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(features(inputs)))
    keras_model = tf.keras.Model(inputs, outputs, name="nested")
    keras_model.set_weights(hand_model().get_weights())
    return engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path_factory.mktemp("nested")))


@pytest.fixture(scope="module")
def x():
    """Three random 6x6x2 inputs (already in the model's input space)."""
    return np.random.default_rng(3).normal(size=(3, 6, 6, 2)).astype(np.float32)


def forward(weights, image):
    """(pre1, a1, pre2, a2): pre-activations and ReLU outputs of conv1 and conv2 for one image."""
    k1, b1, k2, b2, _, _ = weights
    pre1 = ref.conv2d(ref.pad_same_3x3(image), k1, b1)
    pre2 = ref.conv2d(ref.relu(pre1), k2, b2, stride=2)
    return pre1, ref.relu(pre1), pre2, ref.relu(pre2)


def hand_grad_cam_conv2(weights, image, target):
    """Grad-CAM at conv2: a_k = wd[k, c] / 9 (the pool's mean), map = ReLU(sum_k a_k A_k), upsampled 3x3 -> 6x6."""
    a2 = forward(weights, image)[3]
    alphas = weights[4][:, target] / 9.0
    return ref.resize_bilinear(ref.relu(a2 @ alphas), 6, 6)


def hand_grad_cam_conv1(weights, image, target):
    """Grad-CAM at conv1: the logit's gradient w.r.t. A1 goes back through conv2's ReLU and kernel."""
    _, a1, pre2, _ = forward(weights, image)
    grad_a2 = np.broadcast_to(weights[4][:, target] / 9.0, pre2.shape)
    grad_a1 = ref.conv2d_input_grad(grad_a2 * (pre2 > 0), weights[2], a1.shape, stride=2)
    alphas = grad_a1.mean(axis=(0, 1))
    return ref.relu(a1 @ alphas)


def hand_guided_backprop(weights, image, target):
    """Guided backprop: at each ReLU pass only positive gradients where the forward input was positive."""
    pre1, a1, pre2, _ = forward(weights, image)
    grad_a2 = np.broadcast_to(weights[4][:, target] / 9.0, pre2.shape)
    grad_a1 = ref.conv2d_input_grad(ref.relu(grad_a2) * (pre2 > 0), weights[2], a1.shape, stride=2)
    grad_padded = ref.conv2d_input_grad(ref.relu(grad_a1) * (pre1 > 0), weights[0], (8, 8, 2))
    return grad_padded[1:-1, 1:-1]


def test_grad_cam_at_the_default_layer_equals_the_hand_computation(hand, x):
    model, weights = hand
    maps = GRAD_CAM.compute(model, x, TARGETS, {}, None, None, None)
    expected = [hand_grad_cam_conv2(weights, image, t) for image, t in zip(x, TARGETS)]
    assert maps.shape == (3, 6, 6)
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5)
    assert maps.max() > 0


def test_grad_cam_at_a_chosen_layer_equals_the_hand_computation(hand, x):
    model, weights = hand
    maps = GRAD_CAM.compute(model, x, TARGETS, {}, "conv1", None, None)
    expected = [hand_grad_cam_conv1(weights, image, t) for image, t in zip(x, TARGETS)]
    np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5)


def test_grad_cam_at_a_nested_model_uses_its_call_inside_the_outer_model(hand, nested, x):
    _, weights = hand
    assert model_info.default_layer(nested.layers) == "features/conv_b"  # the last convolution inside the base
    expected = [hand_grad_cam_conv2(weights, image, t) for image, t in zip(x, TARGETS)]
    for layer in (None, "features", "features/conv_b"):
        maps = GRAD_CAM.compute(nested, x, TARGETS, {}, layer, None, None)
        np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-5)
    inner = GRAD_CAM.compute(nested, x, TARGETS, {}, "features/conv_a", None, None)
    expected = [hand_grad_cam_conv1(weights, image, t) for image, t in zip(x, TARGETS)]
    np.testing.assert_allclose(inner, expected, rtol=1e-4, atol=1e-5)
    guided = GUIDED.compute(nested, x, TARGETS, {}, "features", None, None)
    np.testing.assert_allclose(guided, GUIDED.compute(hand[0], x, TARGETS, {}, None, None, None), rtol=1e-4, atol=1e-6)


def test_grad_cam_depends_on_the_target(hand, x):
    model, _ = hand
    first = GRAD_CAM.compute(model, x[:1], np.array([0]), {}, None, None, None)
    second = GRAD_CAM.compute(model, x[:1], np.array([1]), {}, None, None, None)
    assert not np.allclose(first, second)


def test_guided_grad_cam_is_guided_backprop_times_upsampled_grad_cam(hand, x):
    model, weights = hand
    maps = GUIDED.compute(model, x, TARGETS, {}, None, None, None)
    for got, image, target in zip(maps, x, TARGETS):
        guided = hand_guided_backprop(weights, image, target)
        expected = guided * hand_grad_cam_conv2(weights, image, target)[..., None]
        assert np.abs(guided).max() > 0
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_a_second_call_builds_nothing_in_the_graph(hand, x):
    model, _ = hand
    for method in (GRAD_CAM, GUIDED):
        method.compute(model, x, TARGETS, {}, None, None, None)
        ops = built_size(model)
        method.compute(model, x[:2], TARGETS[:2], {}, None, None, None)
        assert built_size(model) == ops


def test_the_model_is_left_unchanged(hand, x):
    model, weights = hand
    probs = probabilities(model, x)
    for method in (GRAD_CAM, GUIDED):
        method.compute(model, x, TARGETS, {}, "conv1", None, None)
    with keras_context(model):
        assert model_info.weights_checksum(model.keras_model.get_weights()) == model.manifest["weights_sha256"]
    np.testing.assert_array_equal(probabilities(model, x), probs)


@pytest.mark.parametrize("layer", ["no_such_layer", "probs", "gap"])
@pytest.mark.parametrize("method", [GRAD_CAM, GUIDED], ids=lambda m: m.id)
def test_a_layer_without_spatial_output_is_refused(hand, x, method, layer):
    model, _ = hand
    with pytest.raises(XaiError, match=layer):
        method.compute(model, x, TARGETS, {}, layer, None, None)


@pytest.fixture(scope="module")
def dense_only(tmp_path_factory):
    """A loaded model without any spatial layer: flatten -> dense softmax on 4x4x1 inputs."""
    import tensorflow as tf

    inputs = tf.keras.Input((4, 4, 1))
    outputs = tf.keras.layers.Dense(3, activation="softmax")(tf.keras.layers.Flatten()(inputs))
    keras_model = tf.keras.Model(inputs, outputs, name="mlp")
    return engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path_factory.mktemp("mlp")))


@pytest.mark.parametrize("method", [GRAD_CAM, GUIDED], ids=lambda m: m.id)
def test_a_model_without_spatial_layers_says_why(dense_only, hand, method):
    assert "spatial" in method.reason_unusable(dense_only)
    assert method.reason_unusable(hand[0]) is None
    with pytest.raises(XaiError, match="spatial"):
        method.compute(dense_only, np.zeros((1, 4, 4, 1), np.float32), np.array([0]), {}, None, None, None)


def test_grad_cam_puts_its_mass_on_the_patch_that_decides_the_class(tmp_path_factory):
    model = engine.load_checkpoint(*patch_task.trained_checkpoint(tmp_path_factory.mktemp("patch")))
    images, labels, corners = patch_task.make_images(16, seed=5)
    with_patch = np.flatnonzero(labels)
    maps = GRAD_CAM.compute(model, images[with_patch], labels[with_patch], {}, None, None, None)
    for heat, corner in zip(maps, corners[with_patch]):
        assert heat[patch_task.patch_mask(corner, margin=1)].sum() > 0.6 * heat.sum() > 0


@pytest.mark.parametrize("method", [GRAD_CAM, GUIDED], ids=lambda m: m.id)
def test_through_attribute_the_maps_are_the_methods_own_in_any_batch_size(cnn, images, method):
    x = cnn.preprocess(images[:4])
    whole = attribute(cnn, method.id, images[:4], target={"kind": "class", "index": 2})
    one_by_one = attribute(cnn, method.id, images[:4], target={"kind": "class", "index": 2}, memory_budget=1)
    direct = method.compute(cnn, x, np.full(4, 2), {}, None, None, None)
    np.testing.assert_allclose(whole.maps, direct.sum(axis=-1) if direct.ndim == 4 else direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one_by_one.maps, whole.maps, rtol=1e-5, atol=1e-6)
    assert (whole.raw is not None) == (method is GUIDED)


def activation_model(activation_layer):
    """conv (3x3 same, weights x3 so some pre-activations pass 6) -> `activation_layer` -> pool -> dense."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((6, 6, 2))
    h = activation_layer(layers.Conv2D(3, 3, padding="same", name="conv")(inputs))
    outputs = layers.Dense(3, activation="softmax", name="probs")(layers.GlobalAveragePooling2D()(h))
    model = tf.keras.Model(inputs, outputs, name="act")
    rng = np.random.default_rng(11)
    model.set_weights([3 * rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


@pytest.mark.parametrize(
    "name, build, passes",
    [
        ("relu6", lambda tf: tf.keras.layers.ReLU(max_value=6.0), lambda pre, grad: (pre > 0) & (pre < 6) & (grad > 0)),
        ("tanh", lambda tf: tf.keras.layers.Activation("tanh"), None),
    ],
)
def test_guided_backprop_masks_relu6_and_passes_other_activations_plain(tmp_path_factory, x, name, build, passes):
    import tensorflow as tf

    keras_model = activation_model(build(tf))
    k, b, wd, _ = (w.astype(np.float64) for w in keras_model.get_weights())
    model = engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path_factory.mktemp(name)))
    got = method("guided_backprop").compute(model, x, TARGETS, {}, None, None, None)
    for maps, image, target in zip(got, x, TARGETS):
        pre = ref.conv2d(ref.pad_same_3x3(image), k, b)
        grad = np.broadcast_to(wd[:, target] / 36.0, pre.shape)
        grad = grad * passes(pre, grad) if passes else grad * (1 - np.tanh(pre) ** 2)
        expected = ref.conv2d_input_grad(grad, k, (8, 8, 2))[1:-1, 1:-1]
        assert np.abs(expected).max() > 0
        np.testing.assert_allclose(maps, expected, rtol=1e-4, atol=1e-6)
    if passes:
        pre = np.stack([ref.conv2d(ref.pad_same_3x3(image), k, b) for image in x])
        assert (pre > 6).any() and ((pre > 0) & (pre < 6)).any()
