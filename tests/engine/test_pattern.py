"""PatternNet / PatternAttribution: the paper's toy example, a numpy reference for one layer's patterns, the fitting set."""

import numpy as np
import pytest
from conftest import keras_context, layer_output, method, stack_module, write_checkpoint

from tb_xai_plugin import engine
from tb_xai_plugin.errors import XaiError

pattern = stack_module("pattern")

SIGNAL = np.array([1.0, 0.0])  # a_s: the direction the signal takes in the input
DISTRACTOR = np.array([1.0, 1.0])  # a_d
FILTER = np.array([1.0, -1.0])  # w: w^T x = s exactly, since w^T a_d = 0 and w^T a_s = 1


def toy_data(count, seed):
    """(images [N, 1, 2, 1] x = a_s s + a_d d, signal s [N]), s and d standard normal."""
    rng = np.random.default_rng(seed)
    s, d = rng.standard_normal(count), rng.standard_normal(count)
    x = s[:, None] * SIGNAL + d[:, None] * DISTRACTOR
    return x.reshape(count, 1, 2, 1).astype(np.float32), s


def toy_model():
    """Linear: logits (w^T x, -w^T x) of a two-pixel image, no bias."""
    import tensorflow as tf

    inputs = tf.keras.Input((1, 2, 1))
    h = tf.keras.layers.Flatten(name="flatten")(inputs)
    dense = tf.keras.layers.Dense(2, use_bias=False, name="logits")
    model = tf.keras.Model(inputs, dense(h), name="toy")
    dense.set_weights([np.stack([FILTER, -FILTER], axis=1)])
    return model


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """The toy model loaded by the engine, its patterns fitted on 4000 samples of the toy distribution."""
    model = engine.load_checkpoint(*write_checkpoint(toy_model(), tmp_path_factory.mktemp("toy")))
    pattern.fit_patterns(model, toy_data(4000, seed=0)[0])
    return model


def test_the_toy_pattern_is_the_signal_direction_not_the_filter(toy):
    fitted = toy.cache[pattern.FIT_KEY]
    assert fitted.count == 4000
    np.testing.assert_allclose(fitted.linear["logits"][:, 0], SIGNAL, atol=0.05)
    np.testing.assert_allclose(fitted.linear["logits"][:, 1], -SIGNAL, atol=0.05)


def test_patternnet_recovers_the_signal_where_the_gradient_shows_the_filter(toy):
    images, s = toy_data(6, seed=1)
    target = {"kind": "class", "index": 0}
    signal = engine.attribute(toy, "pattern.net", images, target=target).raw[:, 0, :, 0]  # [N, 2]
    np.testing.assert_allclose(signal, s[:, None] * SIGNAL, atol=0.05 * np.abs(s).max())
    gradient = engine.attribute(toy, "gradient", images, target=target, params={"postprocess": "none"}).raw[:, 0, :, 0]
    np.testing.assert_allclose(gradient, np.tile(FILTER, (6, 1)), atol=1e-6)  # the distractor-cancelling filter


def test_patternattribution_puts_the_output_on_the_signal_pixel_and_sums_to_it(toy):
    images, s = toy_data(6, seed=2)
    relevance = engine.attribute(toy, "pattern.attribution", images, target={"kind": "class", "index": 0}).raw[:, 0, :, 0]
    np.testing.assert_allclose(relevance.sum(axis=1), s, atol=1e-4)  # w^T a = 1: the logit, conserved
    np.testing.assert_allclose(relevance[:, 1], 0, atol=0.05 * np.abs(s).max())


def test_dense_layer_patterns_match_a_numpy_fit_both_estimators(cnn, images):
    fitted = pattern.fit_patterns(cnn, images)
    x = layer_output(cnn, "flatten", cnn.preprocess(images))  # dense1's input
    with keras_context(cnn):
        kernel, bias = cnn.keras_model.get_layer("dense1").get_weights()
    x = x.astype(np.float64)
    y = x @ kernel + bias  # [N, K]
    for estimator, mask in (("linear", np.ones_like(y, bool)), ("relu", y > 0)):
        expected = np.zeros_like(kernel)
        for k in range(y.shape[1]):
            xs, ys = x[mask[:, k]], y[mask[:, k], k]
            if len(ys) >= 2:
                cov = ((xs - xs.mean(0)) * (ys - ys.mean())[:, None]).mean(0)
                if abs(kernel[:, k] @ cov) > 1e-9:
                    expected[:, k] = cov / (kernel[:, k] @ cov)
        np.testing.assert_allclose(getattr(fitted, estimator)["dense1"], expected, rtol=1e-3, atol=1e-4)
    assert np.abs(fitted.relu["dense1"]).max() > 0


def test_maps_depend_on_the_fitting_set_and_reuse_it(cnn, images):
    seen = []
    first = pattern.fit_patterns(cnn, images[:4], progress=lambda done, total: seen.append((done, total)), memory_budget=1)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)] and first.count == 4
    on_first = engine.attribute(cnn, "pattern.net", images[4:]).maps
    second = pattern.fit_patterns(cnn, images[4:])
    assert second.fingerprint != first.fingerprint
    on_second = engine.attribute(cnn, "pattern.net", images[4:]).maps
    assert not np.allclose(on_first, on_second)
    pattern.fit_patterns(cnn, images[:4])
    again = engine.attribute(cnn, "pattern.net", images[4:]).maps  # the same set, fitted in one batch instead of four
    np.testing.assert_allclose(again, on_first, rtol=1e-4, atol=1e-5 * np.abs(on_first).max())
    linear = engine.attribute(cnn, "pattern.net", images[4:], params={"estimator": "linear"}).maps
    assert not np.allclose(linear, on_first)


def test_first_call_fits_on_its_images_when_nothing_is_fitted(tmp_path, images):
    from conftest import small_cnn

    model = engine.load_checkpoint(*write_checkpoint(small_cnn(seed=5), tmp_path))
    x = images[:3].astype(np.float32) / 255
    maps = engine.attribute(model, "pattern.attribution", x).maps
    assert model.cache[pattern.FIT_KEY].count == 3
    other = engine.load_checkpoint(*write_checkpoint(small_cnn(seed=5), tmp_path / "again"))
    pattern.fit_patterns(other, x)
    np.testing.assert_allclose(engine.attribute(other, "pattern.attribution", x).maps, maps, rtol=1e-5, atol=1e-7)


def branching_net():
    """conv -> (conv, identity) -> add: not a chain."""
    import tensorflow as tf

    inputs = tf.keras.Input((8, 8, 1))
    h = tf.keras.layers.Conv2D(2, 3, padding="same", activation="relu")(inputs)
    h = tf.keras.layers.Add()([h, tf.keras.layers.Conv2D(2, 3, padding="same")(h)])
    return tf.keras.Model(inputs, tf.keras.layers.Dense(2)(tf.keras.layers.Flatten()(h)))


def tanh_net():
    """A chain with a tanh unit, which has no pattern estimator."""
    import tensorflow as tf

    inputs = tf.keras.Input((8, 8, 1))
    h = tf.keras.layers.Flatten()(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(2)(tf.keras.layers.Dense(4, activation="tanh", name="hidden")(h)))


@pytest.mark.parametrize("build,reason", [(branching_net, "Add"), (tanh_net, "activation 'tanh'")])
def test_unsupported_networks_are_refused_with_a_reason(tmp_path, build, reason):
    model = engine.load_checkpoint(*write_checkpoint(build(), tmp_path))
    assert reason in method("pattern.net").reason_unusable(model)
    assert method("deeplift").reason_unusable(model) is None  # sums and tanh are within the rescale rule
    x = np.zeros((1, 8, 8, 1), np.float32)
    with pytest.raises(XaiError, match=reason):
        engine.attribute(model, "pattern.attribution", x)
    with pytest.raises(XaiError, match=reason):
        pattern.fit_patterns(model, x)


def test_conv_layer_patterns_match_a_numpy_fit_over_patches(cnn, images):
    import reference as ref

    fitted = pattern.fit_patterns(cnn, images[:2])
    x = layer_output(cnn, "pool1", cnn.preprocess(images[:2]))  # conv2's input
    with keras_context(cnn):
        kernel, bias = cnn.keras_model.get_layer("conv2").get_weights()
    padded = [ref.pad_same_3x3(a.astype(np.float64)) for a in x]
    patches = np.stack([p[i : i + 3, j : j + 3].ravel() for p in padded for i in range(x.shape[1]) for j in range(x.shape[2])])
    flat = kernel.reshape(-1, kernel.shape[-1])
    y = patches @ flat + bias
    for estimator, mask in (("linear", np.ones_like(y, bool)), ("relu", y > 0)):
        for k in range(y.shape[1]):
            xs, ys = patches[mask[:, k]], y[mask[:, k], k]
            cov = ((xs - xs.mean(0)) * (ys - ys.mean())[:, None]).mean(0)
            np.testing.assert_allclose(getattr(fitted, estimator)["conv2"][:, k], cov / (flat[:, k] @ cov), rtol=2e-3, atol=1e-4)


def two_layer_net():
    """Dense 6 -> ReLU 5 -> 3 logits on 1x6x1 images."""
    import tensorflow as tf

    inputs = tf.keras.Input((1, 6, 1))
    h = tf.keras.layers.Dense(5, activation="relu", name="hidden")(tf.keras.layers.Flatten()(inputs))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, name="out")(h))


def test_backward_passes_equal_the_paper_written_out_in_numpy(tmp_path):
    model = engine.load_checkpoint(*write_checkpoint(two_layer_net(), tmp_path))
    fit_set = np.random.default_rng(8).normal(size=(300, 1, 6, 1)).astype(np.float32)
    fitted = pattern.fit_patterns(model, fit_set)
    with keras_context(model):
        (w1, b1), (w2, b2) = model.keras_model.get_layer("hidden").get_weights(), model.keras_model.get_layer("out").get_weights()
    x = np.random.default_rng(9).normal(size=(4, 1, 6, 1)).astype(np.float32)
    flat = x.reshape(4, 6).astype(np.float64)
    z = flat @ w1 + b1
    y = np.maximum(z, 0) @ w2 + b2  # [4, 3]
    a1, a2 = fitted.relu["hidden"], fitted.linear["out"]  # ReLU unit: a+; linear output: a
    for c in range(3):
        target = {"kind": "class", "index": c}
        signal = engine.attribute(model, "pattern.net", x, target=target).raw.reshape(4, 6)
        expected = y[:, c : c + 1] * (((z > 0) * a2[:, c]) @ a1.T)  # s = y_c A1 (mask * A2[:, c])
        np.testing.assert_allclose(signal, expected, rtol=1e-4, atol=1e-5)
        relevance = engine.attribute(model, "pattern.attribution", x, target=target).raw.reshape(4, 6)
        expected = y[:, c : c + 1] * (((z > 0) * (w2 * a2)[:, c]) @ (w1 * a1).T)
        np.testing.assert_allclose(relevance, expected, rtol=1e-4, atol=1e-5)
    linear = engine.attribute(model, "pattern.net", x, params={"estimator": "linear"}, target={"kind": "class", "index": 0}).raw
    expected = y[:, :1] * (((z > 0) * a2[:, 0]) @ fitted.linear["hidden"].T)
    np.testing.assert_allclose(linear.reshape(4, 6), expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(fitted.linear["hidden"], a1, atol=1e-3)


def test_a_set_that_does_not_vary_is_refused_and_keeps_the_fitted_patterns(cnn, images):
    kept = pattern.fit_patterns(cnn, images[:4])
    for bad, message in ((np.full((3, 16, 16, 3), 128, np.uint8), "do not vary"), (images[:0], "no images"), (images[:, :8], "shape")):
        with pytest.raises(XaiError, match=message):
            pattern.fit_patterns(cnn, bad)
        assert cnn.cache[pattern.FIT_KEY] is kept


def test_a_network_too_large_to_fit_is_refused_before_any_work(cnn, images, monkeypatch):
    weights = sum(int(np.prod(v.shape)) for v in cnn.keras_model.weights if len(v.shape) > 1)  # kernels only
    monkeypatch.setattr(pattern, "MAX_FIT_BYTES", weights * pattern.FIT_BYTES_PER_WEIGHT - 1)
    reason = method("pattern.net").reason_unusable(cnn)
    assert "GB of statistics" in reason
    with pytest.raises(XaiError, match="GB of statistics"):
        pattern.fit_patterns(cnn, images)
    monkeypatch.setattr(pattern, "MAX_FIT_BYTES", weights * pattern.FIT_BYTES_PER_WEIGHT)
    assert method("pattern.net").reason_unusable(cnn) is None
