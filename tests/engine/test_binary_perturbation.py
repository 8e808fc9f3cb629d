"""Perturbation maps of a confident binary Dense(1) head (Keras's "from scratch" model) are not constant.

The probability p = sigmoid(z) of a logit z > 17 is exactly 1.0 in float32, and the class-0 probability
1 - p exactly 0.0: every occluded copy scored the same and occlusion / Shapley sampling returned a
constant map. The scores are taken from the re-made head's logits [-z, z] in float64 (perturbation.common),
where p still moves at z = 25.
"""

import numpy as np
import pytest
from conftest import method, write_checkpoint

from tb_xai_plugin import engine

CONFIDENT_LOGIT = 25.0  # float32 sigmoid: exactly 1.0; float64: 1 - p is about 1.4e-11
X = np.random.default_rng(5).uniform(size=(2, 8, 8, 3)).astype(np.float32)
PARAMS = {
    "occlusion": {"window": 4, "stride": 4, "fill": "zero", "score": "probability"},
    "shapley_sampling": {"permutations": 2, "segmentation": "grid", "segments": 4, "fill": "zero",
                         "score": "probability"},
}


def confident_binary_model():
    """conv (relu) -> global average pool -> Dense(1) with bias CONFIDENT_LOGIT: a binary_logit head, z about 25."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((8, 8, 3))
    h = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    model = tf.keras.Model(inputs, layers.Dense(1, name="dense")(h), name="confident_binary")
    rng = np.random.default_rng(3)
    kernel, bias, dense_kernel, _ = [rng.normal(size=w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights([kernel, bias, dense_kernel, np.array([CONFIDENT_LOGIT], np.float32)])
    return model


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """The confident binary model loaded by this stack's backend, its manifest saying binary_logit with two classes."""
    directory = tmp_path_factory.mktemp("binary")
    path, manifest = write_checkpoint(confident_binary_model(), directory, class_names=["cat", "dog"])
    manifest.update(head="binary_logit", num_classes=2)
    return engine.load_checkpoint(path, manifest)


def test_the_float32_probabilities_are_saturated(loaded):
    assert np.all(loaded.scores(X, "probability")[:, 1] == 1.0)


@pytest.mark.parametrize("method_id", sorted(PARAMS))
@pytest.mark.parametrize("target", [0, 1])
def test_perturbation_maps_of_either_class_are_not_constant(loaded, method_id, target):
    params = method(method_id).validate_params(PARAMS[method_id])
    maps = method(method_id).compute(loaded, X, np.full(len(X), target), params, None, None, np.random.default_rng(0))
    assert np.isfinite(maps).all()
    assert all(m.max() > m.min() for m in maps)
