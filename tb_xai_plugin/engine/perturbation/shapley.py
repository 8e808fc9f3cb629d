"""Shapley value sampling over superpixels or patches.

Castro, Gomez & Tejada 2009, "Polynomial calculation of the Shapley value based on sampling",
https://doi.org/10.1016/j.cor.2008.04.004; Strumbelj & Kononenko 2014, "Explaining prediction models
and individual predictions with feature contributions", https://doi.org/10.1007/s10115-013-0679-x

A feature is a segment (SLIC superpixel or grid patch); a coalition keeps its features and fills
the rest. Each of `permutations` random orders adds the features one by one to the empty coalition
(all filled) and credits each with the change of the target's score: S + 1 scores per order. The
mean over orders is an unbiased estimate of the Shapley values, and every order's credits sum to
f(x) - f(all filled), so the map sums to that exactly (efficiency), whatever the budget.
"""

import numpy as np

from tb_xai_plugin.engine.backends import implements_everywhere
from tb_xai_plugin.engine.perturbation import common


def permutation_coalitions(orders):
    """rows -> bool [B, S]: row p (S + 1) + k is the coalition of the first k features of order p."""
    count, size = orders.shape
    rank = np.empty_like(orders)
    rank[np.arange(count)[:, None], orders] = np.arange(size)  # rank[p, s]: position of feature s in order p

    def coalitions(rows):
        index = np.arange(rows.start, rows.stop)
        return rank[index // (size + 1)] < (index % (size + 1))[:, None]

    return coalitions


def shapley_from_scores(orders, scores):
    """[S]: mean over orders of score(first k+1 features) - score(first k), credited to the (k+1)-th."""
    count, size = orders.shape
    gains = np.diff(scores.reshape(count, size + 1), axis=1)  # [P, S]: gain of the feature added at step k
    values = np.zeros(size, np.float64)
    np.add.at(values, orders, gains)
    return values / count


def _shapley_one(model, image, target, params, rng, budget_bytes):
    """[H, W]: each pixel gets its segment's estimated Shapley value."""
    labels = common.segment(image, params)
    size = labels.max() + 1
    orders = np.stack([rng.permutation(size) for _ in range(params["permutations"])])  # [P, S]
    fill = common.fill_image(image, params["fill"])
    rows = len(orders) * (size + 1)
    coalitions = permutation_coalitions(orders)
    scores = common.masked_scores(model, image, fill, labels, coalitions, rows, target, params["score"], budget_bytes)
    return common.paint(shapley_from_scores(orders, scores), labels)


@implements_everywhere("shapley_sampling")
def shapley_sampling(model, x, targets, params, layer, neuron, rng, budget_bytes=common.MEMORY_BUDGET_BYTES):
    """map[p] = phi_s(p) ~ mean over random orders pi of f(pre_pi(s) + s) - f(pre_pi(s)), s = the segment of p."""
    return common.per_image(_shapley_one, model, x, targets, params, rng, budget_bytes)
