"""Every registered method (iNNvestigate's and the project's own) through the same invariants."""

from conftest import weights
import numpy as np
import pytest

from tb_xai_plugin import engine
from tb_xai_plugin.engine import registry

registry.describe_methods()  # imports every method module
METHOD_IDS = list(registry.METHODS)


@pytest.mark.parametrize("method_id", METHOD_IDS)
def test_shapes_finite_and_batch_equals_one_by_one(cnn, images, method_id):
    batch = engine.attribute(cnn, method_id, images, seed=3)
    assert batch.maps.shape == (8, 16, 16) and batch.maps.dtype == np.float32
    assert batch.raw is None or batch.raw.shape == (8, 16, 16, 3)
    assert np.isfinite(batch.maps).all()
    assert batch.targets.dtype == np.int64 and batch.scores.dtype == np.float32
    assert np.abs(batch.maps).max() > 0
    for i in range(len(images)):
        alone = engine.attribute(cnn, method_id, images[i : i + 1], seed=3)
        np.testing.assert_allclose(alone.maps[0], batch.maps[i], rtol=1e-4, atol=1e-5 * np.abs(batch.maps[i]).max())
        assert alone.targets[0] == batch.targets[i]
    # Batches split by a small memory budget give the same maps, with progress after each batch.
    seen = []
    split = engine.attribute(cnn, method_id, images, seed=3, memory_budget=1, progress=lambda done, total: seen.append((done, total)))
    np.testing.assert_allclose(split.maps, batch.maps, rtol=1e-4, atol=1e-5 * np.abs(batch.maps).max())
    assert seen == [(i + 1, 8) for i in range(8)]


@pytest.mark.parametrize("method_id", [m for m in METHOD_IDS if registry.METHODS[m].sampling])
def test_sampling_methods_are_reproducible_with_a_seed(cnn, images, method_id):
    first = engine.attribute(cnn, method_id, images[:3], seed=7).maps
    np.testing.assert_array_equal(engine.attribute(cnn, method_id, images[:3], seed=7).maps, first)
    assert not np.allclose(engine.attribute(cnn, method_id, images[:3], seed=8).maps, first)


@pytest.mark.parametrize("method_id", METHOD_IDS)
def test_targets_and_scores(cnn, images, method_id):
    probs = engine.predict(cnn, images, return_probs=True)["probs"]
    fixed = engine.attribute(cnn, method_id, images[:2], target={"kind": "class", "index": 3})
    assert list(fixed.targets) == [3, 3]
    np.testing.assert_allclose(fixed.scores, probs[:2, 3], rtol=1e-5)
    labels = np.array([2, 0])
    by_label = engine.attribute(cnn, method_id, images[:2], target={"kind": "label"}, labels=labels)
    assert list(by_label.targets) == [2, 0]
    predicted = engine.attribute(cnn, method_id, images[:2])
    assert list(predicted.targets) == list(probs[:2].argmax(1))


def test_describe_and_applicable_methods(cnn):
    described = {m["id"]: m for m in engine.describe_methods()}
    assert set(described) == set(METHOD_IDS)
    for method in described.values():
        assert method["label"] and method["description"]
        for param in method["params"]:
            assert param["type"] in ("int", "float", "bool", "choice")
    assert {"gradient", "smoothgrad", "integrated_gradients", "lrp.epsilon", "deep_taylor.bounded"} <= set(described)
    applicable = engine.applicable_methods(cnn)
    assert set(applicable) == set(METHOD_IDS) and all(v["ok"] and v["reason"] == "" for v in applicable.values())


def test_after_every_method_the_model_is_unchanged(cnn, cnn_checkpoint, images):
    # Runs after the tests above (file order): every method has built its graphs in cnn's graph.
    from tb_xai_plugin import model_info

    assert model_info.weights_checksum(weights(cnn)) == cnn_checkpoint[1]["weights_sha256"]
    assert cnn.logits_model.layers[-1].get_config()["activation"] == "linear"
    assert cnn.keras_model.layers[-1].get_config()["activation"] == "softmax"
