"""LIME for images: a weighted linear surrogate over superpixels switched on and off.

Ribeiro et al. 2016, "Why Should I Trust You?": Explaining the Predictions of Any Classifier",
https://arxiv.org/abs/1602.04938

The image is cut into superpixels (scikit-image SLIC, or a grid). Each of `samples` draws keeps
every superpixel with probability 1/2 (the first sample keeps all, as in the reference `lime`
package) and fills the rest (mean colour, zeros or a blurred copy). The target's score on those
copies is fit by ridge regression on the on/off vectors, each sample weighted by an exponential
kernel of its cosine distance to the all-on vector; each superpixel is painted with its coefficient.
"""

import numpy as np

from tb_xai_plugin.engine.backends import implements_everywhere
from tb_xai_plugin.engine.perturbation import common


def kernel_weights(keep, width):
    """[R]: sqrt(exp(-d^2 / width^2)), d the cosine distance of each on/off row to the all-on vector."""
    cosine = keep.sum(axis=1) / np.sqrt(np.maximum(keep.sum(axis=1), 1) * keep.shape[1])
    distance = 1.0 - cosine
    return np.sqrt(np.exp(-(distance**2) / width**2))


def weighted_ridge(features, y, weights, alpha):
    """Coefficients b of argmin sum_r w_r (y_r - b0 - z_r b)^2 + alpha |b|^2 (intercept b0 unpenalized)."""
    z = np.hstack([np.ones((len(features), 1)), features.astype(np.float64)])
    penalty = alpha * np.eye(z.shape[1])
    penalty[0, 0] = 0.0
    gram = z.T @ (weights[:, None] * z) + penalty
    return np.linalg.lstsq(gram, z.T @ (weights * y), rcond=None)[0][1:]


def _lime_one(model, image, target, params, rng, budget_bytes):
    """[H, W]: the surrogate's coefficient of each pixel's superpixel."""
    labels = common.segment(image, params)
    count = labels.max() + 1
    keep = rng.random((params["samples"], count)) < 0.5  # [R, S]
    keep[0] = True
    fill = common.fill_image(image, params["fill"])
    y = common.masked_scores(model, image, fill, labels, keep.__getitem__, len(keep), target, params["score"], budget_bytes)
    weights = kernel_weights(keep, params["kernel_width"])
    return common.paint(weighted_ridge(keep, y, weights, params["ridge"]), labels)


@implements_everywhere("lime")
def lime(model, x, targets, params, layer, neuron, rng, budget_bytes=common.MEMORY_BUDGET_BYTES):
    """map[p] = b_s(p): ridge fit of f_c(x with segments z on) ~ b0 + sum_s b_s z_s, kernel-weighted."""
    return common.per_image(_lime_one, model, x, targets, params, rng, budget_bytes)
