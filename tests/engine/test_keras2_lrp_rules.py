"""LRP in the Keras 2 stack on MobileNet and EfficientNet layers: DepthwiseConv2D, ReLU(6.), SiLU, squeeze-excite.

iNNvestigate 2.1.2 refused every LRP method on a model with a DepthwiseConv2D or a Keras ReLU layer
(innvestigate/lrp_rules.py has the rules now):
- a DepthwiseConv2D's LRP-epsilon, alpha-beta and z+ (fast) relevance equals numpy's in float64, the layer written
  as its matrix, within a first-order float32 bound;
- relevance is conserved (sum over the input = the explained logit, bias-free, positive weights and
  inputs so that every sum is well conditioned) through a MobileNetV2 block (ReLU(6.) clipping many
  units) and an EfficientNet block (SiLU, the squeeze-excite gate), within a float32 bound;
- MobileNetV2 (alpha 0.35, 32 px) gets finite, non-constant LRP maps.
"""

import numpy as np
import pytest
from conftest import method, write_checkpoint
from float32_error import EPS

import keras2_mobilenet

from tb_xai_plugin import engine
from tb_xai_plugin.errors import XaiError

pytestmark = pytest.mark.stack("keras2")

SAFE = 1e-7  # iNNvestigate's safe_divide: a zero denominator becomes 1e-7
PRESETS = ("lrp.sequential_preset_a", "lrp.sequential_preset_b", "lrp.sequential_preset_a_flat", "lrp.sequential_preset_b_flat")


def depthwise_model():
    """5x5x3 -> DepthwiseConv2D 3x3 'same' (2 per channel, bias) -> Flatten -> Dense(3) softmax; normal weights."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((5, 5, 3))
    h = layers.Flatten(name="flatten")(layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(inputs))
    model = tf.keras.Model(inputs, layers.Dense(3, activation="softmax", name="probs")(h), name="depthwise")
    rng = np.random.default_rng(11)
    model.set_weights([rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def depthwise_matrix(kernel):
    """The 'same' 3x3 depthwise convolution on 5x5xC as a matrix [5*5*C*m, 5*5*C] (Keras' flatten order: y, x, channel)."""
    size, channels, multiplier = 5, kernel.shape[2], kernel.shape[3]
    matrix = np.zeros((size, size, channels, multiplier, size, size, channels))
    for i in range(size):
        for j in range(size):
            for a in range(3):
                for b in range(3):
                    y, x = i + a - 1, j + b - 1
                    if 0 <= y < size and 0 <= x < size:
                        for c in range(channels):
                            matrix[i, j, c, :, y, x, c] = kernel[a, b, c, :]
    return matrix.reshape(size * size * channels * multiplier, size * size * channels)


def rule_term(parts, bias, relevance, stabilize):
    """One term of an LRP rule: z = sum M_k x_k + b, s = R / stab(z), R_in = sum x_k * M_k^T s; (R_in, its float32 error).

    parts: (M_k, x_k, x_k's error); relevance: (R, its error). First order in EPS: z's error is
    (fan-in + parts) EPS (sum |M_k| |x_k| + |b|) plus the inputs' errors through |M_k|; the backward sum's likewise."""
    r, r_error = relevance
    z = sum(m @ x for m, x, _ in parts) + bias
    magnitude = sum(np.abs(m) @ np.abs(x) for m, x, _ in parts) + np.abs(bias)
    length = sum(np.count_nonzero(m, axis=1).max() for m, _, _ in parts) + len(parts)
    z_error = length * EPS * magnitude + sum(np.abs(m) @ e for m, _, e in parts)
    denominator = stabilize(z)
    assert np.all((r == 0) | (z_error < np.abs(denominator) / 2))  # first order holds
    s = r / denominator
    s_error = (r_error + np.abs(s) * z_error) / np.abs(denominator) + EPS * np.abs(s)
    total, error = 0, 0
    for m, x, x_error in parts:
        back = m.T @ s
        back_error = np.abs(m).T @ (s_error + np.count_nonzero(m, axis=0).max() * EPS * np.abs(s))
        total = total + x * back
        error = error + np.abs(x) * back_error + x_error * np.abs(back) + (len(parts) + 1) * EPS * np.abs(x * back)
    return total, error


def epsilon_rule(matrix, bias, x, relevance, epsilon):
    """LRP-epsilon (iNNvestigate's EpsilonRule): z + eps sign(z), sign(0) = 1; x: (value, error)."""
    return rule_term([(matrix, *x)], bias, relevance, lambda z: z + epsilon * np.where(z >= 0, 1, -1))


def alpha_beta_rule(matrix, bias, x, relevance, alpha, beta):
    """iNNvestigate's AlphaBetaRule: alpha (w+ x+ + w- x-, b+ + b-) - beta (w- x+ + w+ x-, b- + b+), each its own z."""
    (x, x_error), pos, neg = x, matrix * (matrix > 0), matrix * (matrix < 0)
    x_pos, x_neg = (x * (x > 0), x_error), (x * (x < 0), x_error)
    b_pos, b_neg = bias * (bias > 0), bias * (bias < 0)
    safe = lambda z: z + SAFE * (z == 0)  # noqa: E731
    active, active_error = rule_term([(pos, *x_pos), (neg, *x_neg)], b_pos + b_neg, relevance, safe)
    inhibit, inhibit_error = rule_term([(neg, *x_pos), (pos, *x_neg)], b_neg + b_pos, relevance, safe)
    out = alpha * active - beta * inhibit
    return out, alpha * active_error + beta * inhibit_error + EPS * (alpha * np.abs(active) + beta * np.abs(inhibit))


def z_plus_fast_rule(matrix, x, relevance):
    """iNNvestigate's ZPlusFastRule: w+ on the input as it is, no bias."""
    return rule_term([(matrix * (matrix > 0), *x)], 0, relevance, lambda z: z + SAFE * (z == 0))


def depthwise_reference(weights, image, target, rule):
    """(R at the input [5, 5, 3], its float32 error): `rule` on the dense layer, then on the depthwise one, in float64."""
    kernel, dw_bias, dense, dense_bias = weights
    matrix, x = depthwise_matrix(kernel), image.reshape(-1)
    bias = np.tile(dw_bias, 25)  # Keras' depthwise bias is per output channel (channel, multiplier), at every pixel
    hidden = matrix @ x + bias
    hidden_error = 10 * EPS * (np.abs(matrix) @ np.abs(x) + np.abs(bias))  # 9 products and the bias
    logit = dense.T @ hidden + dense_bias
    start = np.zeros_like(logit)
    start[target] = logit[target]
    start_error = np.zeros_like(logit)
    start_error[target] = (len(hidden) + 1) * EPS * (np.abs(dense[:, target]) @ np.abs(hidden) + abs(dense_bias[target]))
    start_error[target] += np.abs(dense[:, target]) @ hidden_error
    hidden_relevance = rule(dense.T, dense_bias, (hidden, hidden_error), (start, start_error))
    out, error = rule(matrix, bias, (x, np.zeros_like(x)), hidden_relevance)
    return out.reshape(image.shape), error.reshape(image.shape)


@pytest.fixture(scope="module")
def depthwise(tmp_path_factory):
    """(LoadedModel, float64 weights) of depthwise_model."""
    keras_model = depthwise_model()
    weights = [w.astype(np.float64) for w in keras_model.get_weights()]
    return engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path_factory.mktemp("depthwise"))), weights


@pytest.mark.parametrize("method_id, params, rule", [
    ("lrp.epsilon", {"epsilon": 0.01}, lambda m, b, x, r: epsilon_rule(m, b, x, r, 0.01)),
    ("lrp.alpha_beta", {"alpha": 2.0, "beta": 1.0}, lambda m, b, x, r: alpha_beta_rule(m, b, x, r, 2.0, 1.0)),
    ("lrp.z_plus_fast", {}, lambda m, b, x, r: z_plus_fast_rule(m, x, r)),
])  # fmt: skip
def test_depthwise_relevance_equals_numpy(depthwise, method_id, params, rule):
    model, weights = depthwise
    images = np.random.default_rng(5).normal(size=(2, 5, 5, 3)).astype(np.float32)
    targets = np.array([0, 2])
    got = method(method_id).compute(model, images, targets, method(method_id).validate_params(params), None, None, None)
    for image, t, relevance in zip(images, targets, got):
        expected, error = depthwise_reference(weights, image.astype(np.float64), t, rule)
        assert error.max() < 0.01 * np.abs(expected).max()  # loose where some z is near 0, yet far below the relevance
        assert np.all(np.abs(relevance - expected) <= error), np.abs(relevance - expected).max()


def positive(rng, shape, high):
    """float32 uniform [0, high) weights: every sum of the block is of positive terms (no cancellation)."""
    return rng.uniform(0, high, size=shape).astype(np.float32)


def bias_free_batch_norm(layer, rng):
    """A BatchNormalization(center=False) as a positive scale: moving mean 0, gamma and variance positive."""
    gamma, mean, variance = layer.get_weights()
    layer.set_weights([positive(rng, gamma.shape, 2) + 0.5, np.zeros_like(mean), positive(rng, variance.shape, 2) + 0.5])


def mobilenet_block():
    """MobileNetV2's inverted residual, bias-free: 1x1 expand, BN, ReLU(6.), 3x3 depthwise, BN, ReLU(6.), 1x1 project, BN, Add."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((6, 6, 3))
    h = layers.Conv2D(8, 1, use_bias=False, name="expand")(inputs)
    h = layers.ReLU(6.0, name="expand_relu")(layers.BatchNormalization(center=False, name="expand_bn")(h))
    h = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise")(h)
    h = layers.ReLU(6.0, name="depthwise_relu")(layers.BatchNormalization(center=False, name="depthwise_bn")(h))
    h = layers.BatchNormalization(center=False, name="project_bn")(layers.Conv2D(3, 1, use_bias=False, name="project")(h))
    h = layers.GlobalAveragePooling2D(name="pool")(layers.Add(name="add")([inputs, h]))
    return tf.keras.Model(inputs, layers.Dense(3, use_bias=False, activation="softmax", name="probs")(h), name="mobilenet_block")


def efficientnet_block():
    """EfficientNet's MBConv, bias-free on the signal path: expand, BN, SiLU, depthwise, BN, SiLU, squeeze-excite, project, BN, Add."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((6, 6, 4))
    h = layers.Conv2D(8, 1, use_bias=False, name="expand")(inputs)
    h = layers.Activation("swish", name="expand_activation")(layers.BatchNormalization(center=False, name="expand_bn")(h))
    h = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="depthwise")(h)
    h = layers.Activation("swish", name="activation")(layers.BatchNormalization(center=False, name="bn")(h))
    se = layers.Reshape((1, 1, 8), name="se_reshape")(layers.GlobalAveragePooling2D(name="se_squeeze")(h))
    se = layers.Conv2D(8, 1, activation="sigmoid", name="se_expand")(layers.Conv2D(2, 1, activation="swish", name="se_reduce")(se))
    h = layers.Multiply(name="se_excite")([h, se])
    h = layers.BatchNormalization(center=False, name="project_bn")(layers.Conv2D(4, 1, use_bias=False, name="project_conv")(h))
    h = layers.GlobalAveragePooling2D(name="pool")(layers.Add(name="add")([h, inputs]))
    return tf.keras.Model(inputs, layers.Dense(3, use_bias=False, activation="softmax", name="probs")(h), name="efficientnet_block")


def with_positive_weights(model, seed):
    """`model` with uniform [0, 1) kernels (the squeeze-excite's normal, its gate needs no sign) and bias-free batch norms."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            bias_free_batch_norm(layer, rng)
        elif layer.weights:
            signs = layer.name.startswith("se_")
            layer.set_weights([rng.normal(size=w.shape).astype(np.float32) if signs else positive(rng, w.shape, 1) for w in layer.get_weights()])
    return model


# Accumulation lengths (products in a sum, forward and back) of the blocks' linear steps: expand, BN, depthwise, BN,
# project, BN, Add, pooling, dense, each both ways, and the final sum over the input.
BLOCK_LENGTH = 2 * (8 + 1 + 9 + 1 + 8 + 1 + 2 + 36 + 4 + 4) + 6 * 6 * 4


@pytest.fixture(scope="module")
def blocks(tmp_path_factory):
    """{name: LoadedModel} of the two blocks with positive weights."""
    return {
        name: engine.load_checkpoint(*write_checkpoint(with_positive_weights(build(), seed), tmp_path_factory.mktemp(name)))
        for name, build, seed in (("mobilenet", mobilenet_block, 1), ("efficientnet", efficientnet_block, 2))
    }


def block_images(model):
    """Two positive images for a block: [0, 1) uniform."""
    return np.random.default_rng(4).uniform(size=(2,) + tuple(model.input_shape)).astype(np.float32)


@pytest.mark.parametrize("name, method_id", [
    ("mobilenet", "lrp.z"), ("mobilenet", "lrp.alpha_1_beta_0"), ("efficientnet", "lrp.z"),
])  # fmt: skip
def test_relevance_is_conserved_through_the_block(blocks, name, method_id):
    model, targets = blocks[name], np.array([0, 2])
    images = block_images(model)
    relevance = method(method_id).compute(model, images, targets, {}, None, None, None).astype(np.float64)
    logit = model.scores(images, "logit")[np.arange(2), targets].astype(np.float64)
    assert np.all(np.abs(relevance.reshape(2, -1).sum(axis=1) - logit) <= (BLOCK_LENGTH + 2) * EPS * logit)


def finite_and_varying(maps):
    """True if every map is finite and not constant."""
    return all(np.isfinite(m).all() and m.std() > 0 for m in maps)


# Two presets per block: the four differ in the conv rule (alpha 1 beta 0, alpha 2 beta 1) and the first layer's (flat or not).
@pytest.mark.parametrize("name, presets", [("mobilenet", PRESETS[::3]), ("efficientnet", PRESETS[1:3])])
def test_the_sequential_presets_explain_the_block(blocks, name, presets):
    model = blocks[name]
    for method_id in presets:
        assert method(method_id).reason_unusable(model) is None, method_id
        assert finite_and_varying(method(method_id).compute(model, block_images(model), np.array([0, 1]), {}, None, None, None)), method_id


def test_silu_is_refused_by_name_where_it_has_no_rule(blocks):
    reason = method("lrp.alpha_beta").reason_unusable(blocks["efficientnet"])
    assert "'expand_activation' (Activation): activation swish has no rule here" in reason
    with pytest.raises(XaiError, match="expand_activation"):
        model = blocks["efficientnet"]
        method("lrp.alpha_beta").compute(model, block_images(model), np.array([0, 1]), {"alpha": 2.0, "beta": 1.0}, None, None, None)


def two_signal_product():
    """4x4x2 -> conv a, conv b -> Multiply([a, b]) (no gate) -> flatten -> dense softmax."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((4, 4, 2))
    product = layers.Multiply(name="product")([layers.Conv2D(2, 1, name="a")(inputs), layers.Conv2D(2, 1, name="b")(inputs)])
    return tf.keras.Model(inputs, layers.Dense(3, activation="softmax", name="probs")(layers.Flatten()(product)), name="product")


def test_a_product_of_two_signals_is_refused_by_name(tmp_path):
    model = engine.load_checkpoint(*write_checkpoint(two_signal_product(), tmp_path))
    assert "'product' (Multiply): a product of two signals" in method("lrp.epsilon").reason_unusable(model)


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """MobileNetV2 (alpha 0.35, 32 px), logged eager by keras2_mobilenet.py, loaded by the engine."""
    return engine.load_checkpoint(*keras2_mobilenet.run(tmp_path_factory.mktemp("mobilenet_v2")))


# The preset with the flat first layer stands for the four (each builds for seconds to tens of seconds; the blocks test all four).
@pytest.mark.parametrize("method_id", ["lrp.epsilon", "lrp.sequential_preset_a_flat"])
def test_mobilenet_v2_gets_lrp_maps(mobilenet, method_id):
    assert method(method_id).reason_unusable(mobilenet) is None
    images = np.random.default_rng(8).uniform(-1, 1, size=(2, 32, 32, 3)).astype(np.float32)
    params = method(method_id).validate_params({})
    assert finite_and_varying(method(method_id).compute(mobilenet, images, np.array([0, 2]), params, None, None, None))
