"""LRP through SiLU and squeeze-excite gates in the native backend (`.venv`): an EfficientNet-like block, then EfficientNetB0.

Tolerances come from float32 (float32_error.EPS): the relevance sum of a chain of steps rounds by at most
eps times the sum of their accumulation lengths, relative to the sum of |R| at the input (signs mix).
"""

import numpy as np
import pytest

from conftest import write_checkpoint
from float32_error import EPS
from tb_xai_plugin import engine
from tb_xai_plugin.engine.backends.native import lrp
from tb_xai_plugin.engine.backends.native.lrp import gating
from tb_xai_plugin.errors import XaiError

pytestmark = pytest.mark.stack("keras3")  # the native backend runs in the Keras 3 stack (.venv)

SIDE, WIDTH = 16, 8
# Accumulation lengths on the signal path: stem conv 3*3*3, depthwise 3*3, projection 8, Add 2, pooling 16*16,
# Dense 8, the input sum 16*16*3 (SiLU and the gated product pass relevance unchanged: no rounding).
LENGTHS = (27, 9, WIDTH, 2, SIDE * SIDE, WIDTH, SIDE * SIDE * 3)


def effnet_block():
    """Bias-free signal path: stem conv, SiLU, depthwise conv, swish, squeeze-excite (biased gate branch), projection, residual Add, head."""
    import keras

    keras.utils.set_random_seed(8)
    L = keras.layers
    inputs = keras.Input((SIDE, SIDE, 3))
    stem = L.Activation("silu", name="stem_activation")(L.Conv2D(WIDTH, 3, padding="same", use_bias=False)(inputs))
    x = L.Activation("swish")(L.DepthwiseConv2D(3, padding="same", use_bias=False)(stem))
    se = L.Reshape((1, 1, WIDTH))(L.GlobalAveragePooling2D()(x))
    se = L.Conv2D(2, 1, activation="silu", bias_initializer=keras.initializers.Constant(1.0))(se)
    se = L.Conv2D(WIDTH, 1, activation="sigmoid", bias_initializer=keras.initializers.Constant(2.0), name="se_expand")(se)
    x = L.multiply([x, se], name="se_excite")
    x = L.Add()([L.Conv2D(WIDTH, 1, use_bias=False)(x), stem])
    outputs = L.Dense(3, use_bias=False)(L.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def block():
    """The EfficientNet-like block, built once."""
    return effnet_block()


@pytest.fixture(scope="module")
def images():
    """Two random images in [0, 1]."""
    return np.random.default_rng(1).uniform(0, 1, (2, SIDE, SIDE, 3)).astype(np.float32)


def conservation_gap(model, images, targets):
    """(|sum_i R_i - f_t(x)|, the float32 tolerance, f_t(x)) per image for lrp.epsilon with its tiny default epsilon."""
    relevance = lrp.explain(model, images, targets, "lrp.epsilon")
    logit = model(images).numpy()[np.arange(len(images)), targets]
    tolerance = EPS * sum(LENGTHS) * np.abs(relevance).reshape(len(images), -1).sum(1)
    return np.abs(relevance.reshape(len(images), -1).sum(1) - logit), tolerance, logit


def test_lrp_epsilon_map_through_silu_and_squeeze_excite_is_finite_and_not_constant(block, images):
    """lrp.epsilon explains SiLU, swish and the gated Multiply instead of refusing them."""
    relevance = lrp.explain(block, images, np.array([0, 1], np.int32), "lrp.epsilon")
    assert relevance.shape == images.shape
    assert np.all(np.isfinite(relevance))
    assert np.all(relevance.reshape(2, -1).std(1) > 0)


def test_identity_and_signal_take_all_conserve_the_logit(block, images):
    """sum_i R_i = f_t(x) with a bias-free signal path: SiLU passes R unchanged and the gate (biased branch) gets none."""
    gap, tolerance, logit = conservation_gap(block, images, np.array([0, 2], np.int32))
    np.testing.assert_array_less(gap, tolerance)
    assert np.all(np.abs(logit) > 100 * tolerance)  # a check that could fail


def test_a_gate_given_relevance_loses_it_to_its_branch_biases(block, images, monkeypatch):
    """Break the rule (half the relevance to the gate): the gate branch's biases absorb some, and conservation fails."""
    import tensorflow as tf

    def half_to_the_gate(outs, gate):
        """[R / 2 to the feature map, R / 2 summed over the positions to the (1, 1, C) gate]."""
        return [0.5 * outs[0], 0.5 * tf.reduce_sum(outs[0], axis=(1, 2), keepdims=True)]

    monkeypatch.setattr(gating, "signal_take_all", half_to_the_gate)
    gap, tolerance, _ = conservation_gap(block, images, np.array([0, 0], np.int32))
    assert np.all(gap > 100 * tolerance)


def test_gate_is_recognized_by_its_sigmoid(block):
    """The squeeze-excite product's second input (the sigmoid conv's output) is its gate; nothing else is a gated product."""
    walk = lrp.prepare(block)
    gates = gating.gate_indices(walk)
    assert [(step.layer.name, index) for step, index in gates.items()] == [("se_excite", 1)]


@pytest.mark.parametrize("method_id", ["lrp.alpha_beta", "lrp.z_plus", "deep_taylor"])
def test_methods_without_the_silu_rule_refuse_naming_the_layer(block, images, method_id):
    """Composites without AttnLRP's stabilizer keep refusing SiLU, with a reason naming the layer."""
    reason = lrp.reason_unusable(lrp.prepare(block), method_id)
    assert "'stem_activation'" in reason and "silu" in reason
    with pytest.raises(XaiError, match="stem_activation"):
        lrp.explain(block, images, np.zeros(2, np.int32), method_id)


def test_a_product_of_two_signals_splits_relevance_in_half():
    """y = a * b with no gate: lrp.z gives each factor's producer half of R (uniform rule), alpha_beta refuses it."""
    import keras

    keras.utils.set_random_seed(9)
    L = keras.layers
    inputs = keras.Input((4,))
    a, b = L.Dense(3, use_bias=False, name="a")(inputs), L.Dense(3, use_bias=False, name="b")(inputs)
    model = keras.Model(inputs, L.Dense(2, use_bias=False)(L.Multiply(name="product")([a, b])))
    x = np.random.default_rng(2).uniform(0.5, 1, (2, 4)).astype(np.float32)
    relevance = lrp.explain(model, x, np.zeros(2, np.int32), "lrp.z")
    logit = model(x).numpy()[:, 0]
    np.testing.assert_allclose(relevance.sum(1), logit, rtol=64 * EPS)  # halves of R, each conserved through its Dense
    step = next(s for s in lrp.prepare(model).steps if s.layer.name == "product")
    factors = [model.get_layer(n)(x) for n in ("a", "b")]
    r = np.ones((2, 3), np.float32)
    for half in gating.uniform_product(step, factors, r, lambda z: z):
        np.testing.assert_allclose(half, r / 2, rtol=4 * EPS)  # a * b / (a * b) / 2: two roundings
    assert "'product'" in lrp.reason_unusable(lrp.prepare(model), "lrp.alpha_beta")


@pytest.mark.parametrize("method_id", ["lrp.alpha_beta", "deep_taylor"])
def test_a_relu_net_with_squeeze_excite_is_explained_by_every_composite(images, method_id):
    """Signal-take-all needs no stabilizer: in a ReLU net the gated product is explained by alpha-beta and Deep Taylor too."""
    import keras

    keras.utils.set_random_seed(11)
    L = keras.layers
    inputs = keras.Input((SIDE, SIDE, 3))
    x = L.Conv2D(WIDTH, 3, padding="same", activation="relu")(inputs)
    gate = L.Dense(WIDTH, activation="sigmoid")(L.GlobalAveragePooling2D()(x))
    x = L.Multiply()([x, L.Reshape((1, 1, WIDTH))(gate)])
    model = keras.Model(inputs, L.Dense(3)(L.GlobalAveragePooling2D()(x)))
    logits = model(images).numpy()
    assert np.all(logits.max(1) > 0)  # Deep Taylor starts from max(logit, 0): the top class has some
    relevance = lrp.explain(model, images, logits.argmax(1).astype(np.int32), method_id)
    assert np.all(np.isfinite(relevance)) and np.all(np.abs(relevance).reshape(2, -1).max(1) > 0)


@pytest.fixture(scope="module")
def efficientnet(tmp_path_factory):
    """EfficientNetB0 (weights=None, 32x32) nested in a classifier, saved and loaded by the engine."""
    import keras

    keras.utils.set_random_seed(10)
    inputs = keras.Input((32, 32, 3))
    base = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(base(inputs)))
    path, manifest = write_checkpoint(keras.Model(inputs, outputs), tmp_path_factory.mktemp("effnet"))
    return engine.load_checkpoint(path, manifest)


def test_efficientnet_b0_gets_lrp_epsilon_maps(efficientnet):
    """engine.attribute explains a nested EfficientNetB0 with lrp.epsilon: finite, non-constant maps."""
    images = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3)).astype(np.uint8)
    result = engine.attribute(efficientnet, "lrp.epsilon", images, target={"kind": "class", "index": 1})
    assert result.raw.shape == (2, 32, 32, 3)
    assert np.all(np.isfinite(result.raw))
    assert np.all(result.raw.reshape(2, -1).std(1) > 0)
