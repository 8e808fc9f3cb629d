"""AttnLRP in the native LRP (`.venv`): LayerNormalization, GELU, LayerScale and softmax attention.

Tolerances come from float32 (float32_error.EPS): a relevance sum over n products, all of one sign,
rounds by at most n eps of its magnitude; a chain of L such steps by the sum of their n. Where signs
mix, the bound is taken relative to the sum of |R| at the input (the relevance's own magnitude).
"""

import numpy as np
import pytest

from conftest import write_checkpoint
from float32_error import EPS
from tb_xai_plugin import engine
from tb_xai_plugin.engine.backends.native import lrp
from tb_xai_plugin.engine.backends.native.lrp import composites, transformer
from tb_xai_plugin.errors import XaiError

pytestmark = pytest.mark.stack("keras3")  # the native backend runs in the Keras 3 stack (.venv)

SIDE, WIDTH = 16, 8


def convnext_like():
    """A bias-free ConvNeXt block: patch conv, LayerNorm, grouped conv, LayerNorm, Dense, GELU, Dense, LayerScale, residual, head."""
    import keras
    from keras.src.applications.convnext import LayerScale

    keras.utils.set_random_seed(4)
    L = keras.layers
    inputs = keras.Input((SIDE, SIDE, 3))
    x = L.LayerNormalization(epsilon=1e-6)(L.Conv2D(WIDTH, 4, strides=4, use_bias=False)(inputs))
    h = L.Conv2D(WIDTH, 3, padding="same", groups=WIDTH, use_bias=False)(x)
    h = L.Activation("gelu")(L.Dense(2 * WIDTH, use_bias=False)(L.LayerNormalization(epsilon=1e-6)(h)))
    h = LayerScale(0.5, WIDTH)(L.Dense(WIDTH, use_bias=False)(h))
    x = L.GlobalAveragePooling2D()(L.Add()([x, h]))
    outputs = L.Dense(3, use_bias=False)(L.LayerNormalization(epsilon=1e-6)(x))
    model = keras.Model(inputs, outputs)
    _random_affine(model, center=False)
    return model


def tiny_vit(bias=True):
    """Patch embedding, one pre-norm block (2-head attention, GELU MLP), LayerNorm, mean over tokens, Dense."""
    import keras

    keras.utils.set_random_seed(5)
    L = keras.layers
    inputs = keras.Input((SIDE, SIDE, 3))
    x = L.Reshape((16, WIDTH))(L.Conv2D(WIDTH, 4, strides=4, use_bias=bias)(inputs))
    h = L.LayerNormalization(epsilon=1e-6)(x)
    x = L.Add()([x, L.MultiHeadAttention(2, WIDTH // 2, use_bias=bias)(h, h)])
    h = L.Dense(WIDTH, use_bias=bias)(L.Dense(2 * WIDTH, activation="gelu", use_bias=bias)(L.LayerNormalization(epsilon=1e-6)(x)))
    x = L.GlobalAveragePooling1D()(L.LayerNormalization(epsilon=1e-6)(L.Add()([x, h])))
    model = keras.Model(inputs, L.Dense(3, use_bias=bias)(x))
    _random_affine(model, center=bias)
    return model


def _random_affine(model, center):
    """LayerNorms get random gammas (and random betas if center, else 0), so the affine part is no identity."""
    rng = np.random.default_rng(6)
    for layer in model.layers:
        if type(layer).__name__ == "LayerNormalization":
            gamma = rng.uniform(0.5, 1.5, WIDTH)
            layer.set_weights([gamma, rng.normal(0, 0.3, WIDTH) if center else np.zeros(WIDTH)])


@pytest.fixture(scope="module")
def images():
    """Two random images in [0, 1]."""
    return np.random.default_rng(0).uniform(0, 1, (2, SIDE, SIDE, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def convnext():
    """The ConvNeXt-like model, built once."""
    return convnext_like()


def conservation_tolerance(relevance, lengths):
    """eps * (sum of the chain's accumulation lengths) * sum |R at the input|, per image."""
    return EPS * sum(lengths) * np.abs(relevance).reshape(len(relevance), -1).sum(1)


# The ConvNeXt-like model's accumulation lengths: patch conv 4*4*3, LayerNorm 8 (mean) + 8 (variance),
# grouped conv 3*3, LayerNorm 16, Dense 8, Dense 16, Add 2, pooling 4*4, LayerNorm 16, Dense 8, the input sum 16*16*3.
CONVNEXT_LENGTHS = (48, 16, 9, 16, 8, 16, 2, 16, 16, 8, SIDE * SIDE * 3)


@pytest.mark.parametrize("method_id", ["lrp.z", "lrp.epsilon"])
def test_attnlrp_conserves_the_logit_through_layer_norm_gelu_and_layer_scale(convnext, images, method_id):
    """sum_i R_i = f_t(x) on a bias-free ConvNeXt block: LayerNorm (std a constant), GELU and LayerScale (identity) absorb nothing."""
    targets = np.array([0, 2], np.int32)
    relevance = lrp.explain(convnext, images, targets, method_id)
    logit = convnext(images).numpy()[np.arange(2), targets]
    tolerance = conservation_tolerance(relevance, CONVNEXT_LENGTHS)
    np.testing.assert_array_less(np.abs(relevance.reshape(2, -1).sum(1) - logit), tolerance)
    assert np.all(np.abs(logit) > 100 * tolerance)  # a check that could fail


def test_gradient_times_input_does_not_conserve_through_layer_norm(convnext, images):
    """x * df/dx sums to 0, not f(x): with the std differentiated the bias-free net is scale-invariant (Euler), so the rule matters."""
    import tensorflow as tf

    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logit = convnext(x)[:, 0]
    total = (images * tape.gradient(logit, x).numpy()).reshape(2, -1).sum(1)
    relevance = lrp.explain(convnext, images, np.zeros(2, np.int32), "lrp.epsilon")
    tolerance = conservation_tolerance(relevance, CONVNEXT_LENGTHS)
    assert np.all(np.abs(total - logit.numpy()) > 100 * tolerance)


# The ViT's accumulation lengths: patch conv 48, LayerNorm 16, projections 8, scores 4, softmax 16, context 16,
# output projection 8, Add 2, LayerNorm 16, Dense 8 and 16, Add 2, LayerNorm 16, pooling 16, Dense 8, the input sum.
VIT_LENGTHS = (48, 16, 8, 4, 16, 16, 8, 2, 16, 8, 16, 2, 16, 16, 8, SIDE * SIDE * 3)


def test_attnlrp_on_a_bias_free_vit_conserves_all_but_what_the_softmax_rule_absorbs(images, monkeypatch):
    """sum_i R_i = f_t(x) - sum over softmax rows of (sum R - sum x (R - s sum R)): every other step conserves (tiny eps, no biases)."""
    model = tiny_vit(bias=False)
    absorbed = []
    softmax_rule = transformer.softmax_relevance

    def recording(x, s, relevance, axis):
        """The softmax rule, recording sum R_out - sum R_in per image."""
        r = softmax_rule(x, s, relevance, axis)
        absorbed.append(np.sum(relevance.numpy() - r.numpy(), axis=tuple(range(1, len(r.shape)))))
        return r

    monkeypatch.setattr(transformer, "softmax_relevance", recording)
    targets = np.array([1, 2], np.int32)
    relevance = lrp.explain(model, images, targets, "lrp.epsilon")
    logit = model(images).numpy()[np.arange(2), targets]
    lost = np.sum(absorbed, axis=0)
    tolerance = conservation_tolerance(relevance, VIT_LENGTHS)
    np.testing.assert_array_less(np.abs(relevance.reshape(2, -1).sum(1) - (logit - lost)), tolerance)
    assert np.all(np.abs(lost) > 100 * tolerance)  # the softmax rule does absorb: the check above is not the plain one


def attention_reference(x, wq, wk, wv, wo, r_out, magnitude=False):
    """AttnLRP of bias-free attention(x, x) in float64: LRP-z projections, uniform products, softmax x (R - s sum R) (magnitude: x (R + s sum R))."""
    tokens, heads, key_dim = x.shape[0], wq.shape[1], wq.shape[2]
    q, k, v = (np.einsum("ti,ihd->thd", x, w) for w in (wq, wk, wv))
    scores = np.einsum("thd,shd->hts", q, k) / np.sqrt(key_dim)
    s = np.exp(scores) / np.exp(scores).sum(-1, keepdims=True)
    context = np.einsum("hts,shd->thd", s, v)
    out = np.einsum("thd,hdm->tm", context, wo)
    r_context = np.einsum("thd,hdm,tm->thd", context, wo, r_out / out)
    share = r_context / (2 * context)
    r_s = np.einsum("hts,shd,thd->hts", s, v, share)
    r_v = np.einsum("hts,shd,thd->shd", s, v, share)
    r_scores = scores * (r_s + (1 if magnitude else -1) * s * r_s.sum(-1, keepdims=True))
    half = r_scores / (2 * scores)
    r_q = np.einsum("thd,shd,hts->thd", q, k, half) / np.sqrt(key_dim)
    r_k = np.einsum("thd,shd,hts->shd", q, k, half) / np.sqrt(key_dim)
    back = [np.einsum("ti,ihd,thd->ti", x, w, r / p) for w, r, p in ((wq, r_q, q), (wk, r_k, k), (wv, r_v, v))]
    return back[0], back[1] + back[2]


def test_attention_rule_matches_the_papers_equations_summed_by_hand():
    """attention_relevance on a 2-head attention equals the float64 einsums of AttnLRP's rules (all inputs and weights positive)."""
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(7)
    layer = keras.layers.MultiHeadAttention(2, 2, use_bias=False)
    x = rng.uniform(0.1, 1, (1, 3, 4))
    layer(x.astype(np.float32), x.astype(np.float32))
    weights = [rng.uniform(0.1, 1, w.shape) for w in layer.get_weights()]
    layer.set_weights(weights)
    r_out = rng.uniform(0.1, 1, (1, 3, 4))
    composite = composites.composite("lrp.z", lrp.DEFAULT_PARAMS)
    tokens, r = tf.constant(x, tf.float32), tf.constant(r_out, tf.float32)
    got = transformer.attention_relevance(layer, composite.dense, composite.transformer, [tokens, tokens], r)
    want = attention_reference(x[0], *weights, r_out[0])
    # 7 stages (4 projections' 4-term sums, 2 products' 2- and 3-term sums, softmax), each <= 6 roundings: <= 64 eps
    # of the terms' magnitude; all positive except the softmax rule's subtraction, so the magnitude is that with a +.
    magnitude = attention_reference(x[0], *weights, r_out[0], magnitude=True)
    for g, w, m in zip(got, want, magnitude):
        assert np.all(np.abs(np.asarray(g)[0] - w) <= 64 * EPS * m)


@pytest.fixture(scope="module")
def vit(tmp_path_factory):
    """The tiny ViT (with biases), saved and loaded by the engine."""
    path, manifest = write_checkpoint(tiny_vit(), tmp_path_factory.mktemp("vit"))
    return engine.load_checkpoint(path, manifest)


@pytest.mark.parametrize("method_id", ["lrp.epsilon", "lrp.sequential_preset_a"])
def test_a_vit_gets_finite_non_constant_maps(vit, images, method_id):
    """The engine explains a ViT (patch embedding, LayerNorm, attention, GELU MLP, mean pooling) instead of refusing it."""
    result = engine.attribute(vit, method_id, (images * 255).astype(np.uint8), target={"kind": "class", "index": 1})
    assert result.raw.shape == (2, SIDE, SIDE, 3)
    assert np.all(np.isfinite(result.raw))
    assert np.all(result.raw.reshape(2, -1).std(1) > 0)


def test_rules_without_an_attnlrp_counterpart_refuse_naming_the_layer(vit, images):
    """lrp.alpha_beta has no AttnLRP rule for LayerNorm: refused before compute, the layer named."""
    with pytest.raises(XaiError, match="layer_normalization.*LayerNormalization"):
        engine.attribute(vit, "lrp.alpha_beta", (images * 255).astype(np.uint8), target={"kind": "class", "index": 1})


def test_a_first_token_head_passes_relevance_to_that_token_only():
    """Tokens -> LayerNorm -> x[:, 0] -> Dense, bias-free: token 0 gets sum R = f_t(x), the others 0."""
    import keras

    keras.utils.set_random_seed(8)
    inputs = keras.Input((4, WIDTH))
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False)(keras.layers.LayerNormalization(center=False)(inputs)[:, 0]))
    tokens = np.random.default_rng(9).normal(0, 1, (2, 4, WIDTH)).astype(np.float32)
    relevance = lrp.explain(model, tokens, np.array([0, 1], np.int32), "lrp.epsilon")
    logit = model(tokens).numpy()[np.arange(2), [0, 1]]
    tolerance = conservation_tolerance(relevance, (16, 8, 4 * WIDTH))  # LayerNorm 8 + 8, Dense 8, the input sum
    np.testing.assert_array_less(np.abs(relevance[:, 0].sum(1) - logit), tolerance)
    assert np.all(relevance[:, 1:] == 0)


def test_a_softmax_layer_takes_the_softmax_rule():
    """x -> Softmax -> Dense (no bias), LRP-z: R_s = s w_t, then R_in = x (R_s - s sum R_s), in float64 by hand."""
    import keras

    keras.utils.set_random_seed(10)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(2, use_bias=False)(keras.layers.Softmax()(inputs)))
    x = np.random.default_rng(11).normal(0, 1, (2, 6))
    relevance = lrp.explain(model, x.astype(np.float32), np.array([0, 1], np.int32), "lrp.z")
    s = np.exp(x) / np.exp(x).sum(1, keepdims=True)
    r_s = s * model.layers[-1].get_weights()[0].T[[0, 1]]
    want = x * (r_s - s * r_s.sum(1, keepdims=True))
    magnitude = np.abs(x) * (np.abs(r_s) + s * np.abs(r_s).sum(1, keepdims=True))
    assert np.all(np.abs(relevance - want) <= 32 * EPS * magnitude)  # softmax (6-term sum) and Dense (6 terms): <= 32 roundings


def test_a_masked_attention_call_is_refused_naming_the_layer():
    """A causal attention call is not plain attention: the walk refuses it (the rule would ignore the mask)."""
    import keras

    inputs = keras.Input((4, WIDTH))
    h = keras.layers.MultiHeadAttention(2, 4, name="causal")(inputs, inputs, use_causal_mask=True)
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h)))
    why = lrp.reason_unusable(lrp.prepare(model), "lrp.epsilon")
    assert "causal" in why and "use_causal_mask" in why
