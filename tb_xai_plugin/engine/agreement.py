"""Rank agreement of attribution maps: Spearman's rho of their absolute values (numpy and scipy, no TensorFlow).

For two maps a, b of one sample (any shape, flattened to n values):
    rho(a, b) = pearson(rank(|a|), rank(|b|))     ranks of ties averaged (scipy.stats.rankdata)
rho is undefined (NaN here, null in JSON) when either map is constant. Absolute values, as Adebayo et
al. (2018) report them: a map and its negative rank the same evidence.
"""

import numpy as np
from scipy import stats


def ranks(maps):
    """float64 [N, n]: the average ranks of |maps| [N, ...] within each sample."""
    flat = np.abs(np.asarray(maps, dtype=np.float64)).reshape(len(maps), -1)
    return stats.rankdata(flat, axis=1)


def rank_correlation(first, second):
    """float64 [N]: Spearman's rho of |first[i]| and |second[i]| per sample; NaN where either is constant."""
    return _pearson_rows(ranks(first), ranks(second))


def _pearson_rows(a, b):
    """Pearson correlation of the rows of a and b [N, n]: sum(da * db) / sqrt(sum(da^2) sum(db^2)), NaN if constant."""
    da = a - a.mean(axis=1, keepdims=True)
    db = b - b.mean(axis=1, keepdims=True)
    norm = np.sqrt((da * da).sum(axis=1) * (db * db).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (da * db).sum(axis=1) / norm
    return np.where(norm > 0, np.clip(rho, -1.0, 1.0), np.nan)


def matrix(maps):
    """float64 [N, K, K]: rho between every two of K stacks of maps (None: a missing stack, its row and column NaN)."""
    present = [m for m in maps if m is not None]
    if not present:
        return np.full((0, len(maps), len(maps)), np.nan)
    count = len(present[0])
    ranked = [None if m is None else ranks(m) for m in maps]
    out = np.full((count, len(maps), len(maps)), np.nan)
    for i, a in enumerate(ranked):
        for j in range(i, len(maps)):
            if a is None or ranked[j] is None:
                continue
            out[:, i, j] = out[:, j, i] = _pearson_rows(a, ranked[j])
    return out


def nan_mean(values, axis=0):
    """The mean over `axis` of the finite values (NaN where there are none), without a warning."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    count = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def to_json(values):
    """A nested list of floats with NaN as None (JSON null)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        return None if not np.isfinite(array) else float(array)
    return [to_json(v) for v in array]
