"""Deconvnet and guided backprop start their backward pass from 1, not from the logit's value.

iNNvestigate's analyzers start from the explained output's value (only its Gradient starts from 1),
which scaled these maps by the logit and, for a negative logit, let the wrong sign through its
guided ReLUs. Checked on test_cam's hand model against numpy written from the papers.
"""

import numpy as np
import pytest
import reference as ref
from conftest import write_checkpoint, method, logits
from test_cam import forward, hand_guided_backprop, hand_model

from tb_xai_plugin import engine

X = np.random.default_rng(11).normal(size=(6, 6, 6, 2)).astype(np.float32)
TARGETS = np.array([0, 1, 2, 0, 1, 2])


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """(LoadedModel, float64 weights k1, b1, k2, b2, wd, bd) of test_cam's hand model."""
    keras_model = hand_model()
    weights = [w.astype(np.float64) for w in keras_model.get_weights()]
    return engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path_factory.mktemp("start"))), weights


def hand_deconvnet(weights, image, target):
    """Deconvnet (Zeiler & Fergus 2014): each ReLU passes the backward signal's positive part, ignoring the forward pass."""
    _, a1, pre2, _ = forward(weights, image)
    signal_a2 = np.broadcast_to(weights[4][:, target] / 9.0, pre2.shape)
    signal_a1 = ref.conv2d_input_grad(ref.relu(signal_a2), weights[2], a1.shape, stride=2)
    return ref.conv2d_input_grad(ref.relu(signal_a1), weights[0], (8, 8, 2))[1:-1, 1:-1]


def target_logits(model):
    """The explained logits of X for TARGETS."""
    return logits(model, X)[np.arange(len(X)), TARGETS]


def test_the_explained_logits_take_both_signs(loaded):
    logits = target_logits(loaded[0])
    assert (logits < -0.1).any() and (logits > 0.1).any()


def test_guided_backprop_equals_the_hand_computation_for_either_sign_of_the_logit(loaded):
    model, weights = loaded
    got = method("guided_backprop").compute(model, X, TARGETS, {}, None, None, None)
    expected = np.stack([hand_guided_backprop(weights, image, t) for image, t in zip(X, TARGETS)])
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_deconvnet_equals_the_hand_computation_for_either_sign_of_the_logit(loaded):
    model, weights = loaded
    got = method("deconvnet").compute(model, X, TARGETS, {}, None, None, None)
    expected = np.stack([hand_deconvnet(weights, image, t) for image, t in zip(X, TARGETS)])
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_lrp_still_redistributes_the_logit_value(tmp_path_factory):
    keras_model = hand_model()
    keras_model.set_weights([w if w.ndim > 1 else np.zeros_like(w) for w in keras_model.get_weights()])
    model = engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path_factory.mktemp("no_bias")))
    maps = method("lrp.z").compute(model, X, TARGETS, {}, None, None, None)
    logits = target_logits(model)
    assert (logits < 0).any() and (logits > 0).any()
    np.testing.assert_allclose(maps.sum(axis=(1, 2, 3)), logits, rtol=1e-3, atol=1e-5)
