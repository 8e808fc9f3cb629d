"""LIME: exact on a model linear in its superpixels, the planted patch on top, the surrogate's algebra, bounded batches."""

import numpy as np
import pytest
from conftest import write_checkpoint, method, weights
from counting import CountingModel
from perturbation_models import linear_pixels_model

import float32_error
import patch_task
from tb_xai_plugin import engine
from tb_xai_plugin.engine import batching
from tb_xai_plugin.engine.perturbation import common as perturbation, lime

LIME = method("lime")


@pytest.fixture(scope="module")
def patch_model(tmp_path_factory):
    """The trained patch CNN: class 1 iff a bright 3x3 patch is present."""
    return engine.load_checkpoint(*patch_task.trained_checkpoint(tmp_path_factory.mktemp("patch")))


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    """(model, pixel weights v [8, 8, 1]): logit 0 = sum v x, exactly linear."""
    values = np.random.default_rng(1).normal(size=(8, 8, 1)).astype(np.float32)
    return engine.load_checkpoint(*write_checkpoint(linear_pixels_model(values), tmp_path_factory.mktemp("linear"))), values


def test_recovers_each_segments_share_of_a_linear_model(linear):
    model, values = linear
    x = np.random.default_rng(2).uniform(size=(2, 8, 8, 1)).astype(np.float32)
    params = LIME.validate_params({"segmentation": "grid", "segments": 16, "fill": "zero", "score": "logit", "ridge": 0.0, "samples": 60})
    maps = LIME.compute(model, x, np.zeros(2, np.int64), params, None, None, np.random.default_rng(0))
    labels = perturbation.grid_segments(8, 8, 16)
    for got, image in zip(maps, x):
        share = np.bincount(labels.ravel(), weights=(values * image)[..., 0].ravel())  # what each 2x2 patch adds
        np.testing.assert_allclose(got, share[labels], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("segmentation", ("slic", "grid"))
def test_the_planted_patch_gets_the_top_weight(patch_model, segmentation):
    images, labels, corners = patch_task.make_images(8, seed=7)
    result = engine.attribute(patch_model, "lime", images[labels == 1], target={"kind": "class", "index": 1},
                              params={"segmentation": segmentation, "segments": 25}, seed=1)
    for m, corner in zip(result.maps, corners[labels == 1]):
        top = m == m.max()
        assert patch_task.patch_mask(corner, margin=1)[top].mean() > 0.5  # the top segment is mostly patch
        assert (m[patch_task.patch_mask(corner, margin=0)] > 0).all()


def test_weighted_ridge_matches_least_squares_on_reweighted_rows():
    rng = np.random.default_rng(3)
    z, y, w = rng.random((40, 5)) < 0.5, rng.normal(size=40), rng.random(40)
    design = np.hstack([np.ones((40, 1)), z]) * np.sqrt(w)[:, None]
    expected = np.linalg.lstsq(design, y * np.sqrt(w), rcond=None)[0][1:]
    np.testing.assert_allclose(lime.weighted_ridge(z, y, w, 0.0), expected, rtol=1e-8, atol=1e-10)
    shrunk = lime.weighted_ridge(z, y, w, 100.0)
    assert np.abs(shrunk).sum() < 0.5 * np.abs(expected).sum()


def test_kernel_weights_favour_samples_close_to_the_whole_image():
    keep = np.array([[1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], bool)
    weights = lime.kernel_weights(keep, 0.25)
    assert weights[0] == 1.0 and weights[0] > weights[1] > weights[2] > weights[3] >= 0
    np.testing.assert_allclose(weights[2], np.sqrt(np.exp(-((1 - 0.5) ** 2) / 0.0625)))  # cosine 1/sqrt(4)


def test_batches_stay_within_the_budget_whatever_the_sample_count(patch_model):
    images, _, _ = patch_task.make_images(2, seed=3)
    params = LIME.validate_params({"samples": 500})
    budget = 7 * patch_task.SIZE * patch_task.SIZE * 4 * 8  # a handful of copies
    counting = CountingModel(patch_model)
    small = lime.lime(counting, images[1:], np.ones(1, np.int64), params, None, None, np.random.default_rng(0), budget_bytes=budget)
    limit = batching.forward_batch_size(patch_model, budget)
    assert 1 < limit < 20 and max(counting.rows) <= limit and sum(counting.rows) == 500
    whole_counting = CountingModel(patch_model)
    whole = lime.lime(whole_counting, images[1:], np.ones(1, np.int64), params, None, None, np.random.default_rng(0))
    fed = np.concatenate(counting.inputs)
    np.testing.assert_array_equal(fed, np.concatenate(whole_counting.inputs))  # the same images, only batched otherwise
    # So the maps differ by the surrogate M y (linear in the scores y) of their float32 rounding: |dm| <= max_s sum_r |M_sr| |dy|.
    labels = perturbation.segment(images[1], params)
    keep = np.stack([[np.array_equal(row[labels == s], images[1][labels == s]) for s in range(labels.max() + 1)] for row in fed])
    surrogate = lime.weighted_ridge(keep, np.eye(len(keep)), lime.kernel_weights(keep, params["kernel_width"]), params["ridge"])
    score_error = float32_error.probability_gap(float32_error.network_logit_error(patch_model.keras_model, weights(patch_model), fed))
    tolerance = np.abs(surrogate).sum(axis=1).max() * score_error
    assert np.abs(small - whole).max() <= tolerance < 0.1 * np.abs(whole).max()  # a misplaced sample would still show
