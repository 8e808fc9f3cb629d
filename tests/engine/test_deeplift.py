"""DeepLIFT (rescale): summation to delta, a numpy reference from the paper's rules, the model left as it was."""

import numpy as np
import pytest
from conftest import write_checkpoint, method, stack_module, keras_context

import patch_task
from tb_xai_plugin import engine

DEEPLIFT = method("deeplift")
deeplift = stack_module("deeplift")
REFERENCES = ("zero", "black", "blur", "image_mean")


def logits(model, x):
    """The model's logits [N, K] on preprocessed x."""
    return model.scores(np.asarray(x, np.float32), "logit")


def assert_sums_to_delta(model, x, targets, params):
    """sum of each map == f_t(x) - f_t(x0), to float32 precision."""
    params = DEEPLIFT.validate_params(params)
    maps = DEEPLIFT.compute(model, x, targets, params, None, None, None)
    rows = np.arange(len(x))
    delta = logits(model, x)[rows, targets] - logits(model, deeplift.reference(model, x, params))[rows, targets]
    np.testing.assert_allclose(maps.reshape(len(x), -1).sum(axis=1), delta, rtol=1e-4, atol=1e-5)
    assert np.abs(delta).min() > 1e-3  # the check is not trivially 0 == 0
    return maps


@pytest.mark.parametrize("reference", REFERENCES)
def test_sums_to_delta_through_max_pooling(cnn, images, reference):
    # small_cnn max-pools ReLU outputs: windows where x's maximum equals x0's value there need the rerouting.
    x = cnn.preprocess(images)
    assert_sums_to_delta(cnn, x, np.arange(8) % 4, {"reference": reference, "blur_sigma": 2.0})


@pytest.fixture(scope="module")
def patch_model(tmp_path_factory):
    """The trained patch CNN (global average pooling)."""
    return engine.load_checkpoint(*patch_task.trained_checkpoint(tmp_path_factory.mktemp("patch")))


@pytest.mark.parametrize("reference", ("zero", "blur"))
def test_sums_to_delta_on_the_trained_patch_model_and_finds_the_patch(patch_model, reference):
    images, labels, corners = patch_task.make_images(6, seed=5)
    maps = assert_sums_to_delta(patch_model, images, np.ones(6, np.int64), {"reference": reference})
    for m, corner, label in zip(maps.sum(axis=-1), corners, labels):
        if label:
            inside = patch_task.patch_mask(corner, margin=1)
            assert inside.ravel()[np.argmax(m)]
            if reference == "zero":  # a blurred reference also credits the darker halo it spreads around the patch
                assert m[inside].sum() > 0.5 * np.abs(m).sum()


def tiny_relu_net(seed):
    """Dense 6 -> relu 5 -> relu 4 -> 3 logits on 1x6x1 images, random weights and biases."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    inputs = tf.keras.Input((1, 6, 1))
    h = tf.keras.layers.Flatten()(inputs)
    layers = [tf.keras.layers.Dense(5, activation="relu"), tf.keras.layers.Dense(4, activation="relu"), tf.keras.layers.Dense(3)]
    for layer in layers:
        h = layer(h)
    model = tf.keras.Model(inputs, h)
    for layer in layers:
        kernel, bias = layer.get_weights()
        layer.set_weights([rng.normal(size=kernel.shape), rng.normal(scale=0.5, size=bias.shape)])
    return model


def rescale_reference(weights, x, x0, target):
    """DeepLIFT by its definition: multipliers m = W_l^T (m_{l+1} * dy/dz), dy/dz = (relu z - relu z0) / (z - z0)."""
    zs, z0s, h, h0 = [], [], x, x0
    for kernel, bias in weights[:-1]:
        z, z0 = h @ kernel + bias, h0 @ kernel + bias
        zs.append(z), z0s.append(z0)
        h, h0 = np.maximum(z, 0), np.maximum(z0, 0)
    multiplier = weights[-1][0][:, target]
    for (kernel, _), z, z0 in reversed(list(zip(weights[:-1], zs, z0s))):
        du = z - z0
        slope = np.where(np.abs(du) > 1e-6, (np.maximum(z, 0) - np.maximum(z0, 0)) / np.where(np.abs(du) > 1e-6, du, 1), z > 0)
        multiplier = kernel @ (multiplier * slope)
    return (x - x0) * multiplier


def test_equals_the_rescale_rule_written_out_in_numpy(tmp_path):
    model = engine.load_checkpoint(*write_checkpoint(tiny_relu_net(3), tmp_path))
    with keras_context(model):
        weights = [layer.get_weights() for layer in model.keras_model.layers if layer.get_weights()]
    x = np.random.default_rng(4).normal(size=(5, 1, 6, 1)).astype(np.float32)
    for reference in ("zero", "image_mean"):
        params = DEEPLIFT.validate_params({"reference": reference})
        x0 = deeplift.reference(model, x, params)
        for target in range(3):
            got = DEEPLIFT.compute(model, x, np.full(5, target), params, None, None, None)[:, 0, :, 0]
            expected = np.stack([rescale_reference(weights, a.ravel(), b.ravel(), target) for a, b in zip(x, x0)])
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    gradient = engine.attribute(model, "input_t_gradient", x, target={"kind": "class", "index": 0}).raw
    assert not np.allclose(DEEPLIFT.compute(model, x, np.zeros(5, int), DEEPLIFT.validate_params({}), None, None, None), gradient, atol=1e-3)


def test_references(cnn, images):
    x = cnn.preprocess(images[:2])
    make = lambda kind: deeplift.reference(cnn, x, DEEPLIFT.validate_params({"reference": kind, "blur_sigma": 3.0}))
    np.testing.assert_array_equal(make("zero"), 0)
    np.testing.assert_allclose(make("black"), cnn.preprocess(np.zeros_like(images[:2])))
    np.testing.assert_allclose(make("image_mean")[:, 5, 7], x.mean(axis=(1, 2)), rtol=1e-6)
    blurred = make("blur")
    assert blurred.std(axis=(1, 2)).max() < 0.5 * x.std(axis=(1, 2)).min()
    np.testing.assert_allclose(blurred.mean(axis=(1, 2)), x.mean(axis=(1, 2)), rtol=0.1)


def test_leaves_the_model_and_its_gradients_unchanged(cnn, images):
    x = cnn.preprocess(images[:3])
    before = (logits(cnn, x), engine.attribute(cnn, "gradient", images[:3]).maps)
    engine.attribute(cnn, "deeplift", images[:3], params={"reference": "blur"})
    np.testing.assert_array_equal(logits(cnn, x), before[0])
    np.testing.assert_array_equal(engine.attribute(cnn, "gradient", images[:3]).maps, before[1])
