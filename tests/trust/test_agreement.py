"""Rank agreement of maps (engine.agreement) and the evidence axis' arithmetic (plugin.suggestions): numpy only."""

import numpy as np
import pytest
from scipy import stats

from tb_xai_plugin.engine import agreement
from tb_xai_plugin.plugin import suggestions

RNG = np.random.default_rng(0)


def spearman_by_scipy(a, b):
    """scipy.stats.spearmanr of |a| and |b| flattened, per sample."""
    return np.array([stats.spearmanr(np.abs(x).ravel(), np.abs(y).ravel()).statistic for x, y in zip(a, b)])


def test_rank_correlation_is_scipys_spearman_of_absolute_values_with_ties():
    a = RNG.normal(size=(4, 8, 8)).astype(np.float32)
    b = a + RNG.normal(scale=0.7, size=a.shape).astype(np.float32)
    a[:, :3] = 0.0  # ties: averaged ranks
    b[:, 5:] = np.round(b[:, 5:])
    np.testing.assert_allclose(agreement.rank_correlation(a, b), spearman_by_scipy(a, b), rtol=0, atol=1e-12)


def test_a_map_and_its_negative_rank_the_same_evidence_and_a_constant_map_has_no_rho():
    a = RNG.normal(size=(2, 5, 5))
    assert agreement.rank_correlation(a, -a) == pytest.approx([1.0, 1.0])
    rho = agreement.rank_correlation(a, np.stack([a[0], np.full((5, 5), 3.0)]))
    assert rho[0] == pytest.approx(1.0) and np.isnan(rho[1])


def test_matrix_is_symmetric_with_missing_stacks_as_nan_rows():
    stacks = [RNG.normal(size=(3, 6, 6)) for _ in range(3)]
    out = agreement.matrix([stacks[0], None, stacks[2]])
    assert out.shape == (3, 3, 3)
    np.testing.assert_allclose(out[:, 0, 2], agreement.rank_correlation(stacks[0], stacks[2]))
    np.testing.assert_array_equal(out, np.transpose(out, (0, 2, 1)))
    assert np.isnan(out[:, 1, :]).all() and np.isnan(out[:, :, 1]).all()
    np.testing.assert_allclose(out[:, 0, 0], 1.0)


def test_nan_mean_leaves_out_undefined_values_and_to_json_writes_null():
    values = np.array([[0.5, np.nan], [0.1, np.nan]])
    assert agreement.to_json(agreement.nan_mean(values, axis=0)) == [pytest.approx(0.3), None]
    assert agreement.to_json(agreement.nan_mean(values, axis=1)) == [0.5, 0.1]


def test_evidence_disagreement_is_one_minus_the_mean_over_model_pairs():
    rho = np.full((2, 3, 3), np.nan)
    rho[0, 0, 1], rho[0, 0, 2], rho[0, 1, 2] = 0.9, 0.5, 0.1
    rho[1, 0, 1] = 0.4  # the other pairs undefined: left out
    rho[:, 1, 0], rho[:, 2, 0], rho[:, 2, 1] = rho[:, 0, 1], rho[:, 0, 2], rho[:, 1, 2]
    np.testing.assert_allclose(suggestions.evidence_disagreement(rho), [1 - 0.5, 1 - 0.4])
    assert np.isnan(suggestions.evidence_disagreement(np.full((1, 2, 2), np.nan))).all()


def test_agreeing_samples_are_where_every_model_predicts_the_same_spaced_evenly_under_the_cap():
    predicted = [[0, 1, 2, 1, 1, 0, 2], [0, 1, 0, 1, 1, 0, 2]]
    agreeing, covered = suggestions.agreeing_samples(predicted, 3)
    assert agreeing.tolist() == [0, 1, 3, 4, 5, 6] and covered.tolist() == [0, 3, 5]
    assert suggestions.agreeing_samples(predicted, 10)[1].tolist() == [0, 1, 3, 4, 5, 6]
