"""BatchNormalization folded into its Conv2D / DepthwiseConv2D / Dense for the Keras 2 LRP analyzers (batch_norm_fold).

- the folded logits model computes the rebuilt model's logits within a float32 bound;
- lrp.alpha_beta through the engine on Conv -> BN -> ReLU -> DepthwiseConv -> BN -> ReLU -> GAP -> Dense -> BN ->
  ReLU -> Dense equals lrp.alpha_beta on the plain net with the BNs folded by hand, and differs from
  iNNvestigate's own BN rule (which it gave before the fold);
- a BN after an activation, or on a conv output read twice, is not folded.
"""

import numpy as np
import pytest
from conftest import method, write_checkpoint
from float32_error import EPS

from tb_xai_plugin import engine
from tb_xai_plugin.engine.backends.innvestigate import batch_norm_fold

pytestmark = pytest.mark.stack("keras2")

SIZE = 8
# Accumulation length of each layer (fan-in + bias), BN's multiply and add and the folded weight's rounding included.
LENGTHS = (27 + 4, 9 + 4, SIZE * SIZE + 1, 8 + 4, 6 + 1)


def net(batch_norm, relu=True):
    """8x8x3 -> Conv2D(4) [BN] relu -> DepthwiseConv2D(x2) [BN] relu -> GAP -> Dense(6) [BN] relu -> Dense(3) softmax."""
    import tensorflow as tf

    layers = tf.keras.layers
    activation = (lambda h: layers.ReLU()(h)) if relu else (lambda h: h)
    norm = (lambda h: layers.BatchNormalization(epsilon=1e-3)(h)) if batch_norm else (lambda h: h)
    inputs = tf.keras.Input((SIZE, SIZE, 3))
    h = activation(norm(layers.Conv2D(4, 3, padding="same", name="conv")(inputs)))
    h = activation(norm(layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(h)))
    h = activation(norm(layers.Dense(6, name="dense")(layers.GlobalAveragePooling2D()(h))))
    return tf.keras.Model(inputs, layers.Dense(3, activation="softmax", name="probs")(h), name="bn_net")


def bn_statistics(model, rng):
    """Normal weights; every BN with moving mean, variance, beta set and a gamma with negative entries."""
    for layer in model.layers:
        weights = [rng.normal(size=w.shape).astype(np.float32) for w in layer.get_weights()]
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = weights
            gamma[0] = -abs(gamma[0]) - 0.5
            weights = [gamma, beta, mean, rng.uniform(0.3, 3, size=variance.shape).astype(np.float32)]
        layer.set_weights(weights)


def folded_by_hand(bn_model, relu=True, absolute=False):
    """net(batch_norm=False) with bn_model's weights, BNs folded in float64: W k, b k + c (|W k|, (|b| + |mean|) |k| + |beta| if absolute)."""
    plain = net(batch_norm=False, relu=relu)
    layers = [layer for layer in bn_model.layers if layer.get_weights()]
    weights = []
    for i, layer in enumerate(layers):
        if type(layer).__name__ == "BatchNormalization":
            continue
        kernel, bias = (w.astype(np.float64) for w in layer.get_weights())
        following = layers[i + 1] if i + 1 < len(layers) else None
        if following is not None and type(following).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = (w.astype(np.float64) for w in following.get_weights())
            k = gamma / np.sqrt(variance + following.epsilon)
            c = beta - mean * k
            kernel = kernel * (k.reshape(kernel.shape[-2:]) if kernel.ndim == 4 and layer.name == "dw" else k)
            bias = (np.abs(bias) + np.abs(mean)) * np.abs(k) + np.abs(beta) if absolute else bias * k + c
        weights += [np.abs(kernel) if absolute else kernel, np.abs(bias) if absolute else bias]
    plain.set_weights([w.astype(np.float32) for w in weights])
    return plain


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """(BN net loaded, hand-folded net loaded, hand-folded |W| net without ReLUs (Keras), images)."""
    bn_model = net(batch_norm=True)
    bn_statistics(bn_model, np.random.default_rng(3))
    hand = folded_by_hand(bn_model)
    images = np.random.default_rng(4).normal(size=(2, SIZE, SIZE, 3)).astype(np.float32)
    loaded = [engine.load_checkpoint(*write_checkpoint(m, tmp_path_factory.mktemp(name))) for m, name in ((bn_model, "bn"), (hand, "hand"))]
    return loaded[0], loaded[1], folded_by_hand(bn_model, relu=False, absolute=True), images


def logit_bound(absolute_net, images):
    """eps * sum of accumulation lengths * max logit of the |W| net on |x|, twice (two float32 computations compared)."""
    import tensorflow as tf

    hidden = tf.keras.Model(absolute_net.inputs, absolute_net.layers[-1].input).predict(np.abs(images), verbose=0)
    kernel, bias = absolute_net.layers[-1].get_weights()
    return 2 * EPS * sum(LENGTHS) * (hidden.astype(np.float64) @ kernel + bias).max()


def test_folded_model_computes_the_rebuilt_logits(nets):
    model, _, absolute, images = nets
    folded = batch_norm_fold.logits_model_for("lrp.alpha_beta", model)
    assert folded is not model.logits_model and "BatchNormalization" not in {type(layer).__name__ for layer in folded.layers}
    assert batch_norm_fold.logits_model_for("gradient", model) is model.logits_model
    rebuilt, got = model.run([model.logits_model.outputs[0], folded.outputs[0]], {model.input: images})
    assert np.abs(rebuilt).max() > 1  # non-trivial logits
    assert np.abs(got - rebuilt).max() <= logit_bound(absolute, images)


@pytest.mark.parametrize("method_id, params, weight", [
    ("lrp.alpha_beta", {"alpha": 2.0, "beta": 1.0}, 3.0),
    ("lrp.z_plus", {}, 1.0),
    ("deep_taylor", {}, 1.0),
    ("deep_taylor.bounded", {"low": -6.0, "high": 6.0}, 1.0),
])  # fmt: skip
def test_lrp_equals_the_hand_folded_net(nets, method_id, params, weight):
    model, hand, _, images = nets
    lrp = method(method_id)
    targets = np.array([0, 2])
    got = lrp.compute(model, images, targets, lrp.validate_params(params), None, None, None)
    expected = lrp.compute(hand, images, targets, lrp.validate_params(params), None, None, None)
    # Each part of the rule is a sum of like-signed terms, relative error eps * length per layer (twice: two runs),
    # and each layer's parts are weighted (alpha + beta for alpha-beta, 1 for z+): at most weight^layers times the logit.
    logit = np.abs(model.scores(images, "logit")[np.arange(2), targets]).max()
    bound = 2 * EPS * sum(LENGTHS) * weight ** len(LENGTHS) * logit
    assert np.abs(expected).max() > 10 * bound
    assert np.abs(got - expected).max() <= bound, np.abs(got - expected).max()


@pytest.mark.parametrize("method_id, params", [("lrp.alpha_beta", {"alpha": 2.0, "beta": 1.0}), ("lrp.z_plus", {})])
def test_innvestigate_bn_rule_differs(nets, method_id, params):
    model, hand, _, images = nets
    lrp = method(method_id)
    params = lrp.validate_params(params)
    unfolded = analyzer_without_fold(model, method_id, params)(images, np.array([0, 2]))
    expected = lrp.compute(hand, images, np.array([0, 2]), params, None, None, None)
    difference = np.abs(unfolded - expected).max() / np.abs(expected).max()
    print("%s, iNNvestigate's own BN rule vs folded: max |diff| / max |map| = %.3g" % (method_id, difference))
    assert difference > 0.1


def analyzer_without_fold(model, method_id, params):
    """iNNvestigate's analyzer on the rebuilt (unfolded) logits model, as the engine built it before the fold."""
    from tb_xai_plugin.engine.backends.innvestigate import analyzers

    model.cache[("bn-folded-logits",)] = model.logits_model  # the fold's cache entry answers "no fold"
    try:
        return analyzers.CompiledAnalyzer(model, method_id, analyzers.analyzer_kwargs(method_id, params, model))
    finally:
        del model.cache[("bn-folded-logits",)]


def test_unfoldable_batch_norms_stay(tmp_path_factory):
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((SIZE, SIZE, 3))
    after_relu = layers.BatchNormalization()(layers.Conv2D(4, 3, padding="same", activation="relu")(inputs))
    conv = layers.Conv2D(4, 3, padding="same")(after_relu)
    read_twice = layers.Add()([layers.BatchNormalization()(conv), conv])
    outputs = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(read_twice))
    model = engine.load_checkpoint(*write_checkpoint(tf.keras.Model(inputs, outputs), tmp_path_factory.mktemp("unfoldable")))
    assert batch_norm_fold.logits_model_for("lrp.z", model) is model.logits_model
