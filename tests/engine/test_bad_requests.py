"""Every bad request raises XaiError with a message, before computing, and leaves the model intact."""

import numpy as np
import pytest
from conftest import innvestigate_only, write_checkpoint

from tb_xai_plugin import engine
from tb_xai_plugin.errors import XaiError

BAD = [
    (dict(method_id="nope"), "unknown method 'nope'"),
    (dict(params={"postprocess": "cube"}), "postprocess"),
    (dict(params={"steps": 3}), "no parameter 'steps'"),
    (dict(method_id="integrated_gradients", params={"steps": 0}), "steps"),
    (dict(method_id="integrated_gradients", params={"steps": 2.5}), "whole number"),
    (dict(method_id="integrated_gradients", params={"reference": "gray"}), "reference"),
    (dict(method_id="smoothgrad", params={"noise_scale": float("nan")}), "noise_scale"),
    (dict(method_id="smoothgrad", params={"augment_by_n": "8"}), "number"),
    (dict(method_id="lrp.epsilon", params={"epsilon": -1.0}), "epsilon"),
    (dict(method_id="lrp.alpha_beta", params={"alpha": 2.0, "beta": 0.5}), "alpha - beta = 1"),
    (dict(method_id="deep_taylor.bounded", params={"low": 5.0, "high": 1.0}), "low < high"),
    (dict(target={"kind": "class", "index": 4}), r"\[0, 4\)"),
    (dict(target={"kind": "class", "index": -1}), "target class"),
    (dict(target={"kind": "class", "index": "2"}), "target class"),
    (dict(target={"kind": "class"}), "target class"),
    (dict(target={"kind": "best"}), "target must be"),
    (dict(target="predicted"), "target must be"),
    (dict(target={"kind": "label"}), "needs labels"),
    (dict(target={"kind": "label"}, labels=[0, 1]), "labels must be 3"),
    (dict(target={"kind": "label"}, labels=[0, 1, -1]), "unlabeled"),
    (dict(target={"kind": "label"}, labels=[0, 1, 9]), "not a class"),
    (dict(target={"kind": "label"}, labels=[0.0, 1.0, 2.0]), "integers"),
    (dict(method_id="grad_cam", layer="nope"), "unknown layer 'nope'"),
    (dict(method_id="grad_cam", layer=3), "unknown layer"),
    (dict(method_id="activation", layer="conv2", neuron=8), r"\[0, 8\)"),
    (dict(method_id="activation", layer="conv2", neuron=-1), "neuron"),
    (dict(method_id="activation", layer="conv2", neuron=True), "neuron"),
    (dict(images=np.zeros((3, 8, 8, 3))), "shape"),
    (dict(images=np.zeros((0, 16, 16, 3))), "no images"),
    (dict(images=np.zeros((16, 16))), "shape"),
    (dict(seed=-1), "seed"),
    (dict(seed=1.5), "seed"),
    (dict(memory_budget=0), "memory_budget"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[message for _, message in BAD])
def test_bad_requests_raise_xai_error(cnn, images, change, message):
    request = dict(method_id="gradient", images=images[:3])
    request.update(change)
    method_id, images_ = request.pop("method_id"), request.pop("images")
    before = engine.attribute(cnn, "gradient", images[:3]).maps
    with pytest.raises(XaiError, match=message):
        engine.attribute(cnn, method_id, images_, **request)
    np.testing.assert_array_equal(engine.attribute(cnn, "gradient", images[:3]).maps, before)


def layer_norm_net():
    """A small net with a LayerNormalization, which iNNvestigate's LRP has no rule for (the native LRP has AttnLRP's)."""
    import tensorflow as tf

    inputs = tf.keras.Input((8, 8, 2))
    h = tf.keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    h = tf.keras.layers.Flatten()(tf.keras.layers.LayerNormalization(name="norm")(h))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(h))


@innvestigate_only  # the native LRP's refusals: test_non_relu_models
def test_architectures_iNNvestigate_refuses_are_reported_per_method(tmp_path):
    model = engine.load_checkpoint(*write_checkpoint(layer_norm_net(), tmp_path))
    applicable = engine.applicable_methods(model)
    assert not applicable["lrp.epsilon"]["ok"]
    assert "'norm' (LayerNormalization)" in applicable["lrp.epsilon"]["reason"]
    assert applicable["gradient"]["ok"] and applicable["gradient"]["reason"] == ""
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 2)).astype(np.float32)
    with pytest.raises(XaiError, match="LayerNormalization"):
        engine.attribute(model, "lrp.epsilon", x)
    assert engine.attribute(model, "gradient", x).maps.shape == (2, 8, 8)
