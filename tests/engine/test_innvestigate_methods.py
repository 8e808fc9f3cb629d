"""iNNvestigate's methods through the engine, checked against their definitions on tiny models."""

import numpy as np
import pytest
from conftest import small_cnn, write_checkpoint

import patch_task
from tb_xai_plugin import engine


def smooth_net(seed=0):
    """conv-tanh, dense-tanh, dense softmax on 8x8x1: smooth, so finite differences are exact enough."""
    import tensorflow as tf

    init = tf.keras.initializers.GlorotUniform(seed=seed)
    inputs = tf.keras.Input((8, 8, 1))
    h = tf.keras.layers.Conv2D(4, 3, activation="tanh", kernel_initializer=init, name="conv")(inputs)
    h = tf.keras.layers.Flatten()(h)
    h = tf.keras.layers.Dense(8, activation="tanh", kernel_initializer=init)(h)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax", kernel_initializer=init)(h))


@pytest.fixture(scope="module")
def smooth(tmp_path_factory):
    return engine.load_checkpoint(*write_checkpoint(smooth_net(), tmp_path_factory.mktemp("smooth")))


@pytest.fixture(scope="module")
def x8():
    return np.random.default_rng(3).uniform(size=(2, 8, 8, 1)).astype(np.float32)


def logits(model, x):
    """The explained pre-softmax outputs [N, K], in float64."""
    return model.scores(np.asarray(x, np.float32), "logit").astype(np.float64)


def test_gradient_matches_central_finite_differences(smooth, x8):
    target = {"kind": "class", "index": 2}
    grad = engine.attribute(smooth, "gradient", x8, params={"postprocess": "none"}, target=target).raw
    eps = 1e-2
    for i in range(len(x8)):
        steps = np.eye(64, dtype=np.float32).reshape(64, 8, 8, 1) * eps
        finite = (logits(smooth, x8[i] + steps)[:, 2] - logits(smooth, x8[i] - steps)[:, 2]) / (2 * eps)
        np.testing.assert_allclose(grad[i].ravel(), finite, rtol=1e-2, atol=1e-3)
    assert np.abs(grad).max() > 1e-3


def test_gradient_postprocess_abs_and_square(smooth, x8):
    plain = engine.attribute(smooth, "gradient", x8, params={"postprocess": "none"}).raw
    np.testing.assert_allclose(engine.attribute(smooth, "gradient", x8, params={"postprocess": "abs"}).raw, np.abs(plain), rtol=1e-6)
    np.testing.assert_allclose(engine.attribute(smooth, "gradient", x8, params={"postprocess": "square"}).raw, plain**2, rtol=1e-5)


def test_input_times_gradient_is_input_times_gradient(smooth, x8):
    grad = engine.attribute(smooth, "gradient", x8, params={"postprocess": "none"}).raw
    ixg = engine.attribute(smooth, "input_t_gradient", x8).raw
    np.testing.assert_allclose(ixg, x8 * grad, rtol=1e-5, atol=1e-7)


def test_integrated_gradients_completeness(cnn, images):
    # sum_i IG_i = f_t(x) - f_t(x0) (Sundararajan et al. 2017, axiom 'completeness'), on a ReLU net.
    result = engine.attribute(cnn, "integrated_gradients", images, params={"steps": 64, "reference": "zero"})
    x = cnn.preprocess(images)
    gap = logits(cnn, x)[np.arange(len(x)), result.targets] - logits(cnn, np.zeros_like(x))[0, result.targets]
    np.testing.assert_allclose(result.raw.reshape(len(x), -1).sum(1), gap, rtol=0.01, atol=1e-4 * np.abs(gap).max())


def test_lrp_z_conserves_the_logit_on_a_bias_free_relu_net(tmp_path, images):
    model = engine.load_checkpoint(*write_checkpoint(small_cnn(seed=5, bias=False), tmp_path))
    result = engine.attribute(model, "lrp.z", images, target={"kind": "class", "index": 1})
    logit = logits(model, model.preprocess(images))[:, 1]
    np.testing.assert_allclose(result.raw.reshape(len(images), -1).sum(1), logit, rtol=1e-4)
    np.testing.assert_allclose(result.maps.reshape(len(images), -1).sum(1), logit, rtol=1e-4)


@pytest.fixture(scope="module")
def patch_model(tmp_path_factory):
    return engine.load_checkpoint(*patch_task.trained_checkpoint(tmp_path_factory.mktemp("patch")))


@pytest.mark.parametrize("method_id,least,typical", [("gradient", 0.25, 0.38), ("lrp.epsilon", 0.5, 0.5)])
def test_attribution_mass_lies_on_the_deciding_patch(patch_model, method_id, least, typical):
    # Region: the 3x3 patch and a 2-pixel rim (what the model's two 3x3 convs see of it): 49 of 256
    # pixels, 19%. LRP-epsilon puts most of the mass there in every image. The plain gradient of this
    # conv + global-average-pool net is nonzero wherever a background ReLU is on, so it is held to
    # twice the area share in the median image, more than the area share in each, and its peak.
    images, labels, corners = patch_task.make_images(16, seed=11)
    assert (engine.predict(patch_model, images, top_k=1)["top_classes"][:, 0] == labels).mean() >= 0.9
    with_patch = labels == 1
    result = engine.attribute(patch_model, method_id, images[with_patch], target={"kind": "class", "index": 1})
    shares = []
    for heat, corner in zip(np.abs(result.maps), corners[with_patch]):
        shares.append(heat[patch_task.patch_mask(corner, margin=2)].sum() / heat.sum())
        assert patch_task.patch_mask(corner, margin=1).ravel()[np.argmax(heat)]
    assert min(shares) > least and np.median(shares) > typical


def randomized_copy(keras_model, layer_names, seed):
    """A copy of keras_model whose `layer_names` get fresh random weights (Adebayo et al. 2018)."""
    import tensorflow as tf

    copy = tf.keras.models.clone_model(keras_model)
    copy.set_weights(keras_model.get_weights())
    rng = np.random.default_rng(seed)
    for name in layer_names:
        layer = copy.get_layer(name)
        layer.set_weights([rng.normal(0, np.std(w) + 1e-3, w.shape).astype(np.float32) for w in layer.get_weights()])
    return copy


def test_gradient_maps_change_when_the_last_layers_are_randomized(patch_model, tmp_path):
    # Model randomization test (Adebayo et al. 2018, arXiv:1810.03292): a map that ignores the weights fails it.
    import tensorflow as tf

    trained = tf.keras.models.load_model(patch_task.trained_checkpoint(None)[0], compile=False)
    random_model = engine.load_checkpoint(*write_checkpoint(randomized_copy(trained, ["conv2", "probs"], seed=0), tmp_path))
    images, labels, _ = patch_task.make_images(8, seed=12)
    target = {"kind": "class", "index": 1}
    before = np.abs(engine.attribute(patch_model, "gradient", images, target=target).maps).reshape(8, -1)
    after = np.abs(engine.attribute(random_model, "gradient", images, target=target).maps).reshape(8, -1)
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    correlations = [np.corrcoef(rank(b), rank(a))[0, 1] for b, a in zip(before, after)]
    assert np.median(correlations) < 0.5
    again = np.abs(engine.attribute(patch_model, "gradient", images, target=target).maps).reshape(8, -1)
    np.testing.assert_allclose(again, before)  # the trained model is unchanged


def test_smoothgrad_is_seeded_and_averages_noisy_gradients(smooth, x8):
    params = {"noise_scale": 0.2, "augment_by_n": 8, "postprocess": "none"}
    a = engine.attribute(smooth, "smoothgrad", x8, params=params, seed=1).raw
    b = engine.attribute(smooth, "smoothgrad", x8, params=params, seed=1).raw
    c = engine.attribute(smooth, "smoothgrad", x8, params=params, seed=2).raw
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    # By hand: the same draws from the same generator, gradient at each noisy copy, averaged.
    noise = np.random.default_rng(1).standard_normal((8, 8, 8, 1)).astype(np.float32)
    sigma = 0.2 * (x8.max(axis=(1, 2, 3)) - x8.min(axis=(1, 2, 3)))
    targets = engine.attribute(smooth, "gradient", x8).targets
    grads = [
        engine.attribute(smooth, "gradient", x8 + sigma[:, None, None, None] * z, params={"postprocess": "none"},
                         target={"kind": "class", "index": int(targets[0])}).raw
        for z in noise
    ]
    np.testing.assert_allclose(a[0], np.mean(grads, axis=0)[0], rtol=1e-4, atol=1e-7)
    zero_noise = engine.attribute(smooth, "smoothgrad", x8, params=dict(params, noise_scale=0.0)).raw
    np.testing.assert_allclose(zero_noise, engine.attribute(smooth, "gradient", x8, params={"postprocess": "none"}).raw, rtol=1e-5)


def test_the_gradient_family_follows_one_another_on_a_branched_model(tmp_path):
    import parity_models

    # iNNvestigate 2.1.2 cannot build a second reverse analyzer on a branched model: the family shares one.
    model = engine.load_checkpoint(*write_checkpoint(parity_models.mixed_net(seed=2), tmp_path))
    x = np.random.default_rng(5).normal(size=(2, 10, 10, 2)).astype(np.float32)
    target = {"kind": "class", "index": 1}
    plain = engine.attribute(model, "gradient", x, params={"postprocess": "none"}, target=target).raw
    for method_id, params in (("gradient", {}), ("integrated_gradients", {"steps": 4}), ("smoothgrad", {"augment_by_n": 2}),
                              ("input_t_gradient", {}), ("gradient", {"postprocess": "square"})):  # fmt: skip
        assert engine.attribute(model, method_id, x, params=params, target=target).maps.shape == (2, 10, 10), method_id
    np.testing.assert_array_equal(engine.attribute(model, "gradient", x, target=target).raw, np.abs(plain))
    np.testing.assert_array_equal(engine.attribute(model, "input_t_gradient", x, target=target).raw, x * plain)
