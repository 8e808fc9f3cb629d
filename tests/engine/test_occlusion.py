"""Occlusion against an explicit loop over windows with the model's own predict."""

from conftest import method, keras_context
import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st

import patch_task
from tb_xai_plugin import engine
from tb_xai_plugin.engine.attribution import attribute
from tb_xai_plugin.engine import batching
from tb_xai_plugin.engine.perturbation import common, occlusion
from tb_xai_plugin.errors import XaiError

OCCLUSION = method("occlusion")
TARGETS = np.array([1, 3, 0])


@pytest.fixture(scope="module")
def x(cnn, images):
    """Three of the shared random images, preprocessed for small_cnn."""
    return cnn.preprocess(images[:3]) / 255.0


def predict(model, score):
    """The plain model's predict (probabilities) or its logits model's predict, in the model's graph."""

    def run(batch):
        with keras_context(model):
            keras_model = model.logits_model if score == "logit" else model.keras_model
            return keras_model.predict(batch, verbose=0)

    return run


@pytest.mark.parametrize(
    "params",
    [
        {"window": 5, "stride": 3, "fill": "mean", "score": "probability"},
        {"window": 4, "stride": 4, "fill": "zero", "score": "logit"},
        {"window": 16, "stride": 1, "fill": "zero", "score": "probability"},
    ],
)
def test_occlusion_equals_an_explicit_loop_over_windows(cnn, x, params):
    maps = OCCLUSION.compute(cnn, x, TARGETS, OCCLUSION.validate_params(params), None, None, None)
    assert maps.shape == (3, 16, 16)
    for got, image, target in zip(maps, x, TARGETS):
        fill = image.mean(axis=(0, 1)) if params["fill"] == "mean" else 0.0
        expected = ref.occlusion(predict(cnn, params["score"]), image, target, params["window"], params["stride"], fill)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
        assert np.abs(got).max() > 0


def test_the_defaults_scale_with_the_image(cnn, x):
    params = OCCLUSION.validate_params({})
    assert occlusion.window_and_stride(params, 16, 16) == (2, 1)
    assert occlusion.window_and_stride(params, 224, 200) == (25, 12)
    maps = OCCLUSION.compute(cnn, x[:1], TARGETS[:1], params, None, None, None)
    expected = ref.occlusion(predict(cnn, "probability"), x[0], TARGETS[0], 2, 1, x[0].mean(axis=(0, 1)))
    np.testing.assert_allclose(maps[0], expected, rtol=1e-4, atol=1e-6)


def test_a_small_memory_budget_gives_the_same_maps_in_more_batches(cnn, x):
    params = OCCLUSION.validate_params({"window": 3, "stride": 2})
    assert batching.forward_batch_size(cnn, 1) == 1
    assert batching.forward_batch_size(cnn, common.MEMORY_BUDGET_BYTES) > 100
    whole = OCCLUSION.compute(cnn, x, TARGETS, params, None, None, None)
    one_by_one = occlusion.occlusion(cnn, x, TARGETS, params, None, None, None, budget_bytes=1)
    np.testing.assert_allclose(one_by_one, whole, rtol=1e-5, atol=1e-7)


def test_windows_cover_every_pixel_up_to_the_edge():
    assert common.window_starts(16, 5, 3) == [0, 3, 6, 9, 11]
    assert common.window_starts(16, 4, 4) == [0, 4, 8, 12]
    assert common.window_starts(16, 16, 7) == [0]


@given(st.integers(1, 300), st.integers(1, 300), st.integers(1, 300))
def test_window_starts_cover_the_axis_in_bounds_for_any_sizes(size, window, stride):
    window = min(window, size)
    stride = min(stride, window)
    starts = common.window_starts(size, window, stride)
    covered = np.zeros(size, bool)
    for start in starts:
        covered[start : start + window] = True
    assert covered.all() and starts[0] == 0 and starts[-1] == size - window
    assert all(b - a <= stride for a, b in zip(starts, starts[1:])) and starts == sorted(set(starts))


@pytest.mark.parametrize(
    "params, message",
    [
        ({"window": 17}, "larger than the image"),
        ({"window": 100, "stride": 1}, "larger than the image"),
        ({"window": 3, "stride": 4}, "larger than the window"),
    ],
)
def test_a_window_larger_than_the_image_or_a_stride_larger_than_the_window_is_refused(cnn, x, params, message):
    with pytest.raises(XaiError, match=message):
        OCCLUSION.compute(cnn, x, TARGETS, OCCLUSION.validate_params(params), None, None, None)


@pytest.mark.parametrize("params", [{"window": -1}, {"stride": 2.5}, {"fill": "blue"}, {"score": "loss"}, {"size": 3}])
def test_bad_parameters_are_refused(params):
    with pytest.raises(XaiError):
        OCCLUSION.validate_params(params)


def test_occlusion_puts_its_mass_on_the_patch_that_decides_the_class(tmp_path_factory):
    model = engine.load_checkpoint(*patch_task.trained_checkpoint(tmp_path_factory.mktemp("patch")))
    images, labels, corners = patch_task.make_images(16, seed=5)
    with_patch = np.flatnonzero(labels)
    params = OCCLUSION.validate_params({"window": 3, "stride": 1})
    maps = np.maximum(OCCLUSION.compute(model, images[with_patch], labels[with_patch], params, None, None, None), 0)
    for heat, corner in zip(maps, corners[with_patch]):
        assert heat[patch_task.patch_mask(corner, margin=1)].sum() > 0.6 * heat.sum() > 0


def test_through_attribute_the_maps_are_the_methods_own_in_any_batch_size(cnn, images):
    params = {"window": 4, "stride": 2}
    x = cnn.preprocess(images[:3])
    target = {"kind": "class", "index": 1}
    whole = attribute(cnn, "occlusion", images[:3], params=params, target=target)
    one_by_one = attribute(cnn, "occlusion", images[:3], params=params, target=target, memory_budget=1)
    direct = OCCLUSION.compute(cnn, x, np.ones(3, np.int64), OCCLUSION.validate_params(params), None, None, None)
    np.testing.assert_allclose(whole.maps, direct, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(one_by_one.maps, whole.maps, rtol=1e-5, atol=1e-7)
    with pytest.raises(XaiError, match="larger than the image"):
        attribute(cnn, "occlusion", images[:1], params={"window": 20})
