"""The native walk (nested models flattened, fused activations split), BatchNorm folding and LRP's refusals (`.venv`)."""

import numpy as np
import pytest

from conftest import write_checkpoint
from tb_xai_plugin import engine
from tb_xai_plugin.errors import XaiError

pytestmark = pytest.mark.stack("keras3")  # the native backend runs in the Keras 3 stack (.venv)


def nested_model(activation="relu"):
    """Rescaling, a nested base (fused-ReLU conv, depthwise conv, ReLU6, Add), a separable conv, BN, pooling, dense."""
    import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    base_in = keras.Input((8, 8, 3))
    h = L.Conv2D(4, 3, padding="same", activation=activation, name="conv")(base_in)
    h2 = L.ReLU(6.0)(L.DepthwiseConv2D(3, padding="same")(h))
    base = keras.Model(base_in, L.Add(name="add")([h, h2]), name="base")
    inputs = keras.Input((8, 8, 3))
    y = base(L.Rescaling(1 / 255.0)(inputs))
    y = L.BatchNormalization()(L.SeparableConv2D(5, 3)(y))
    y = L.Dense(3)(L.GlobalAveragePooling2D()(y))
    model = keras.Model(inputs, y)
    bn = model.layers[-3]
    rng = np.random.default_rng(1)
    bn.set_weights([rng.uniform(0.5, 1.5, 5), rng.normal(0, 0.1, 5), rng.normal(0, 0.2, 5), rng.uniform(0.5, 1.5, 5)])
    return model


@pytest.fixture(scope="module")
def images():
    """Two random images in [0, 255]."""
    return np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype(np.float32)


def test_walk_flattens_nested_models_splits_fused_activations_and_reproduces_the_logits(images):
    from tb_xai_plugin.engine.backends.native.walk import Walk

    model = nested_model()
    walk = Walk(model)
    names = [(s.kind, s.name) for s in walk.steps]
    assert ("linear", "conv") in names and ("activation", "conv/activation") in names
    assert not any(type(s.layer).__name__ == "Functional" for s in walk.steps), "the base must be flattened"
    add = next(s for s in walk.steps if s.name == "add")
    assert len(add.inputs) == 2 and len(walk.consumers(add.inputs[0])) == 2  # the conv's output: Add and the depthwise conv
    values = walk.forward(images)
    np.testing.assert_array_equal(np.asarray(values[walk.outputs[0]]), model(images).numpy())


def test_linear_steps_take_other_weights_and_the_model_is_left_unchanged(images):
    from keras import ops

    from tb_xai_plugin.engine.backends.native.lrp import canonizers
    from tb_xai_plugin.engine.backends.native.walk import Walk

    model = nested_model()
    before = [w.copy() for w in model.get_weights()]
    walk = Walk(model)
    conv = next(s for s in walk.steps if s.name == "conv")
    x = ops.convert_to_tensor(images[:1])
    doubled = conv.linear(x, [2 * k for k in conv.kernels], None)
    plain = conv.linear(x, conv.kernels, None)
    np.testing.assert_allclose(np.asarray(doubled), 2 * np.asarray(plain), rtol=1e-6)
    folded = canonizers.canonize(walk)
    assert not any(type(s.layer).__name__ == "BatchNormalization" for s in folded.steps), "BN must fold into the separable conv"
    np.testing.assert_allclose(np.asarray(folded.forward(images)[folded.outputs[0]]), model(images).numpy(), rtol=1e-5, atol=1e-5)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_batch_norm_after_an_add_becomes_an_elementwise_linear_step(images):
    import keras

    from tb_xai_plugin.engine.backends.native import lrp

    L = keras.layers
    inputs = keras.Input((8, 8, 3))
    h = L.Conv2D(3, 3, padding="same")(inputs)
    h = L.BatchNormalization()(L.Add()([h, inputs]))
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(h)))
    model.layers[3].set_weights([np.full(3, 2.0), np.full(3, 0.5), np.full(3, 0.1), np.full(3, 4.0)])
    prepared = lrp.prepare(model)
    bn = next(s for s in prepared.steps if type(s.layer).__name__ == "BatchNormalization")
    assert bn.kind == "linear"
    np.testing.assert_allclose(np.asarray(prepared.forward(images)[prepared.outputs[0]]), model(images).numpy(), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("method_id", ["lrp.epsilon", "deep_taylor"])
def test_an_unsupported_layer_is_refused_before_any_compute_naming_it(tmp_path, images, method_id):
    model = engine.load_checkpoint(*write_checkpoint(nested_model(activation="tanh"), tmp_path))
    reason = engine.applicable_methods(model)[method_id]["reason"]
    assert "'conv'" in reason and "tanh" in reason
    with pytest.raises(XaiError, match="'conv'"):
        engine.attribute(model, method_id, images.astype(np.uint8))
    assert not any(key[:2] == ("fn", "lrp") for key in model.cache), "nothing may be compiled for a refused model"


@pytest.mark.parametrize("method_id", ["lrp.sequential_preset_a_flat", "deep_taylor.bounded", "lrp.epsilon"])
def test_in_model_preprocessing_passes_relevance_and_bounds_through(images, method_id):
    """Rescaling + Normalization first: the map equals the plain net's on the preprocessed input (bounds carried too)."""
    import keras

    from tb_xai_plugin.engine.backends.native import lrp

    L = keras.layers
    keras.utils.set_random_seed(4)
    body = [L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(3)]
    mean, variance = np.array([0.1, 0.2, 0.3]), np.array([0.5, 1.0, 2.0])
    inputs = keras.Input((8, 8, 3))
    h = L.Normalization(mean=mean, variance=variance)(L.Rescaling(1 / 255.0)(inputs))
    for layer in body:
        h = layer(h)
    model = keras.Model(inputs, h)
    plain_in = keras.Input((8, 8, 3))
    h = plain_in
    for layer in body:
        h = layer(h)
    plain = keras.Model(plain_in, h)
    preprocessed = (images / 255.0 - mean) / np.sqrt(variance)
    targets = np.array([0, 2])
    low, high = (0 - mean) / np.sqrt(variance), (1 - mean) / np.sqrt(variance)
    ours = lrp.explain(model, images, targets, method_id, {}, (0.0, 255.0))
    if method_id == "deep_taylor.bounded":  # per-channel bounds: the plain net gets them as the walk carries them
        from tb_xai_plugin.engine.backends.native.lrp import composites, propagation

        reference = propagation.relevance(
            lrp.prepare(plain), composites.composite(method_id, {}), preprocessed.astype(np.float32), targets,
            bounds=(low.astype(np.float32), high.astype(np.float32))).numpy()
    else:
        reference = lrp.explain(plain, preprocessed.astype(np.float32), targets, method_id, {})
    assert np.abs(reference).max() > 0
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-5 * np.abs(reference).max())
