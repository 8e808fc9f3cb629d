"""Prediction difference analysis: the patch first, zero evidence where the model does not look, the conditional sampler, bounded batches."""

import numpy as np
import pytest
from conftest import write_checkpoint, method, weights
from counting import CountingModel
from perturbation_models import linear_pixels_model

import float32_error
import patch_task
from tb_xai_plugin import engine
from tb_xai_plugin.engine import batching
from tb_xai_plugin.engine.perturbation import prediction_difference as pda
from tb_xai_plugin.errors import XaiError

PDA = method("prediction_difference")


@pytest.fixture(scope="module")
def patch_model(tmp_path_factory):
    """The trained patch CNN: class 1 iff a bright 3x3 patch is present."""
    return engine.load_checkpoint(*patch_task.trained_checkpoint(tmp_path_factory.mktemp("patch")))


@pytest.mark.parametrize("sampling", ("conditional", "marginal"))
def test_the_planted_patch_comes_first(patch_model, sampling):
    images, labels, corners = patch_task.make_images(6, seed=11)
    result = engine.attribute(patch_model, "prediction_difference", images[labels == 1], target={"kind": "class", "index": 1},
                              params={"window": 2, "stride": 1, "samples": 8, "sampling": sampling}, seed=2)
    for m, corner in zip(result.maps, corners[labels == 1]):
        assert patch_task.patch_mask(corner, margin=1)[np.unravel_index(np.argmax(m), m.shape)]
        assert m[patch_task.patch_mask(corner, margin=0)].mean() > 5 * np.abs(m[~patch_task.patch_mask(corner, margin=2)]).mean()


def test_no_evidence_where_the_model_has_no_weight(tmp_path):
    values = np.random.default_rng(0).normal(size=(8, 8, 1)).astype(np.float32)
    values[:, :4] = 0  # the left half never reaches the logits
    model = engine.load_checkpoint(*write_checkpoint(linear_pixels_model(values), tmp_path))
    x = np.random.default_rng(1).uniform(size=(2, 8, 8, 1)).astype(np.float32)
    for sampling in ("conditional", "marginal"):
        params = PDA.validate_params({"window": 2, "stride": 1, "sampling": sampling, "padding": 1})
        maps = PDA.compute(model, x, np.zeros(2, np.int64), params, None, None, np.random.default_rng(0))
        # Windows there change nothing the model sees: 0 up to the float32 rounding of the 64-term logit and its softmax.
        p = 1 / (1 + np.exp(-2 * (x.reshape(2, -1) @ values.ravel().astype(np.float64))))  # softmax of (z, -z)
        tolerance = 2 * float32_error.log2_odds_gap(p, float32_error.dense_logit_error(values, x)).max()
        assert np.abs(maps[:, :, :3]).max() <= tolerance
        assert np.abs(maps[:, :, 5:]).min() > tolerance  # and evidence above that noise where it looks


def test_weight_of_evidence_is_a_log_odds_difference():
    np.testing.assert_allclose(pda.log2_odds(np.array([0.5, 0.8, 0.2])), [0.0, 2.0, -2.0])
    assert np.isfinite(pda.log2_odds(np.array([0.0, 1.0]))).all()


def test_the_conditional_sampler_predicts_a_window_from_its_frame():
    rows, cols = np.mgrid[0:24, 0:24]
    noise = np.random.default_rng(2).normal(scale=0.01, size=(24, 24))
    image = (np.sin(rows / 4.0) + np.cos(cols / 5.0) + noise)[..., None].astype(np.float32)
    sampler = pda.ConditionalSampler(image, window=3, padding=2)
    marginal = pda.MarginalSampler(image, window=3)
    zero = np.zeros((1, 9))
    errors, spread = [], []
    for r, c in [(5, 5), (10, 14), (17, 3)]:
        truth = image[r : r + 3, c : c + 3]
        errors.append(np.abs(sampler.draw(r, c, zero)[0] - truth).max())
        spread.append(np.abs(marginal.draw(r, c, zero)[0] - truth).max())
        draws = sampler.draw(r, c, np.random.default_rng(3).standard_normal((500, 9)))
        assert draws.std(axis=0).max() < 0.1  # a smooth image leaves little freedom given the frame
    assert max(errors) < 0.1 and max(errors) < 0.2 * min(spread)


def test_windows_default_to_an_eighth_of_the_side_and_bad_geometry_is_refused(patch_model):
    assert pda.window_and_stride(PDA.validate_params({}), 224, 200, 3) == (25, 12)
    assert pda.window_and_stride(PDA.validate_params({}), 16, 16, 3) == (2, 1)
    # Conditional sampling inverts a (window + 2 padding)^2 C covariance: the default shrinks to fit, a given window is refused.
    assert pda.window_and_stride(PDA.validate_params({}), 512, 512, 3) == (32, 16)
    assert pda.window_and_stride(PDA.validate_params({"sampling": "marginal"}), 512, 512, 3) == (64, 32)
    with pytest.raises(XaiError, match="at most 32 pixels"):
        pda.window_and_stride(PDA.validate_params({"window": 40}), 512, 512, 3)
    x = patch_task.make_images(1, seed=0)[0]
    for params, message in (({"window": 17}, "larger than the image"), ({"window": 2, "stride": 3}, "stride"),
                            ({"padding": 0}, "padding"), ({"padding": 16, "window": 2}, "padding")):
        with pytest.raises(XaiError, match=message):
            engine.attribute(patch_model, "prediction_difference", x, params=params)


def test_batches_stay_within_the_budget_whatever_the_sample_count(patch_model):
    images, _, _ = patch_task.make_images(2, seed=3)
    params = PDA.validate_params({"window": 4, "stride": 4, "samples": 30})
    budget = 7 * patch_task.SIZE * patch_task.SIZE * 4 * 8
    counting = CountingModel(patch_model)
    small = pda.prediction_difference(counting, images[1:], np.ones(1, np.int64), params, None, None, np.random.default_rng(0), budget_bytes=budget)
    assert max(counting.rows) <= batching.forward_batch_size(patch_model, budget) < 20
    assert sum(counting.rows) == 16 * 30 + 1  # 16 windows x 30 draws, and the image itself
    whole_counting = CountingModel(patch_model)
    whole = pda.prediction_difference(whole_counting, images[1:], np.ones(1, np.int64), params, None, None, np.random.default_rng(0))
    fed = np.concatenate(counting.inputs)
    np.testing.assert_array_equal(fed, np.concatenate(whole_counting.inputs))  # the same images, only batched otherwise
    # So the maps differ only by float32 rounding: of the network's logits, then of its softmax (base, then window means).
    logit_error = float32_error.network_logit_error(patch_model.keras_model, weights(patch_model), fed)
    window_means = np.concatenate(counting.outputs[:-1])[:, 1].astype(np.float64).reshape(16, 30).mean(axis=1)
    base = float(counting.outputs[-1][0, 1])
    tolerance = float32_error.log2_odds_gap(base, logit_error) + float32_error.log2_odds_gap(window_means, logit_error).max()
    assert np.abs(small - whole).max() <= tolerance < 0.1 * np.abs(whole).max()  # a misplaced window would still show
