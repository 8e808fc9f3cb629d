"""Shapley value sampling: converges to exact Shapley values of a 4-feature model, efficiency, the planted patch, bounded batches."""

import itertools
import math

import numpy as np
import pytest
from conftest import write_checkpoint, method, logits, weights
from counting import CountingModel
from perturbation_models import four_pixel_model, linear_pixels_model

import float32_error
import patch_task
from tb_xai_plugin import engine
from tb_xai_plugin.engine import batching
from tb_xai_plugin.engine.perturbation import common as perturbation, shapley

SHAPLEY = method("shapley_sampling")
PIXELS = {"segmentation": "grid", "segments": 4, "fill": "zero", "score": "logit"}  # 2x2 image: one feature per pixel


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    """The 4-feature ReLU net, loaded by the engine."""
    return engine.load_checkpoint(*write_checkpoint(four_pixel_model(5), tmp_path_factory.mktemp("four")))


def exact_shapley(value, size):
    """phi_i = sum over coalitions S without i of |S|! (n - |S| - 1)! / n! (v(S + i) - v(S)), by enumeration."""
    phi = np.zeros(size)
    for i in range(size):
        others = [j for j in range(size) if j != i]
        for k in range(size):
            for subset in itertools.combinations(others, k):
                weight = math.factorial(k) * math.factorial(size - k - 1) / math.factorial(size)
                phi[i] += weight * (value(set(subset) | {i}) - value(set(subset)))
    return phi


def logit_of(model, image, target):
    """v(S): the target logit with the pixels outside S set to 0 (features = pixels in row-major order)."""

    def value(coalition):
        keep = np.isin(np.arange(image.size), list(coalition)).reshape(image.shape)
        return float(logits(model, np.where(keep, image, 0)[None])[0, target])

    return value


def test_estimates_converge_to_the_exact_shapley_values(four):
    image = np.random.default_rng(6).uniform(0.5, 1.5, size=(2, 2, 1)).astype(np.float32)
    exact = exact_shapley(logit_of(four, image, 0), 4)
    assert np.abs(exact).min() > 1e-3 and np.ptp(exact) > 0.1  # a game where every pixel matters differently
    errors = []
    for permutations in (4, 64, 2000):
        params = SHAPLEY.validate_params(dict(PIXELS, permutations=permutations))
        got = SHAPLEY.compute(four, image[None], np.zeros(1, np.int64), params, None, None, np.random.default_rng(0))[0]
        np.testing.assert_allclose(got.sum(), exact.sum(), rtol=1e-5)  # efficiency holds at every budget
        errors.append(np.abs(got.ravel() - exact).max())
    assert errors[2] < 0.05 * np.abs(exact).max() and errors[2] < errors[0]


def test_a_linear_model_gets_its_exact_contributions_from_one_permutation(tmp_path):
    values = np.random.default_rng(1).normal(size=(8, 8, 1)).astype(np.float32)
    model = engine.load_checkpoint(*write_checkpoint(linear_pixels_model(values), tmp_path))
    image = np.random.default_rng(2).uniform(size=(8, 8, 1)).astype(np.float32)
    params = SHAPLEY.validate_params({"segmentation": "grid", "segments": 16, "fill": "zero", "score": "logit", "permutations": 1})
    got = SHAPLEY.compute(model, image[None], np.zeros(1, np.int64), params, None, None, np.random.default_rng(0))[0]
    labels = perturbation.grid_segments(8, 8, 16)
    share = np.bincount(labels.ravel(), weights=(values * image)[..., 0].ravel())
    np.testing.assert_allclose(got, share[labels], rtol=1e-4, atol=1e-5)


def test_coalitions_follow_each_order():
    orders = np.array([[2, 0, 1], [1, 2, 0]])
    rows = shapley.permutation_coalitions(orders)(slice(0, 8))
    expected = [[0, 0, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 0, 0], [0, 1, 0], [0, 1, 1], [1, 1, 1]]
    np.testing.assert_array_equal(rows, np.array(expected, bool))
    np.testing.assert_array_equal(shapley.permutation_coalitions(orders)(slice(5, 7)), rows[5:7])
    scores = np.array([0, 3, 4, 10, 0, 1, 5, 10], float)  # gains: order 1 credits 2:3, 0:1, 1:6; order 2 credits 1:1, 2:4, 0:5
    np.testing.assert_allclose(shapley.shapley_from_scores(orders, scores), [3, 3.5, 3.5])


@pytest.fixture(scope="module")
def patch_model(tmp_path_factory):
    """The trained patch CNN: class 1 iff a bright 3x3 patch is present."""
    return engine.load_checkpoint(*patch_task.trained_checkpoint(tmp_path_factory.mktemp("patch")))


@pytest.mark.parametrize("segmentation", ("slic", "grid"))
def test_the_planted_patch_gets_the_top_value(patch_model, segmentation):
    images, labels, corners = patch_task.make_images(8, seed=7)
    result = engine.attribute(patch_model, "shapley_sampling", images[labels == 1], target={"kind": "class", "index": 1},
                              params={"segmentation": segmentation, "segments": 25}, seed=1)
    for m, corner in zip(result.maps, corners[labels == 1]):
        assert patch_task.patch_mask(corner, margin=1)[m == m.max()].mean() > 0.5
        assert (m[patch_task.patch_mask(corner, margin=0)] > 0).all()


def test_batches_stay_within_the_budget_whatever_the_permutation_count(patch_model):
    images, _, _ = patch_task.make_images(2, seed=3)
    params = SHAPLEY.validate_params({"permutations": 40, "segmentation": "grid", "segments": 16})
    budget = 7 * patch_task.SIZE * patch_task.SIZE * 4 * 8
    counting = CountingModel(patch_model)
    small = shapley.shapley_sampling(counting, images[1:], np.ones(1, np.int64), params, None, None, np.random.default_rng(0), budget_bytes=budget)
    assert max(counting.rows) <= batching.forward_batch_size(patch_model, budget) < 20
    assert sum(counting.rows) == 40 * 17
    whole_counting = CountingModel(patch_model)
    whole = shapley.shapley_sampling(whole_counting, images[1:], np.ones(1, np.int64), params, None, None, np.random.default_rng(0))
    fed = np.concatenate(counting.inputs)
    np.testing.assert_array_equal(fed, np.concatenate(whole_counting.inputs))  # the same images, only batched otherwise
    # So a value, a mean of differences of two probabilities, moves by at most twice their float32 rounding.
    tolerance = 2 * float32_error.probability_gap(float32_error.network_logit_error(patch_model.keras_model, weights(patch_model), fed))
    assert np.abs(small - whole).max() <= tolerance < 0.1 * np.abs(whole).max()  # a misplaced permutation would still show
