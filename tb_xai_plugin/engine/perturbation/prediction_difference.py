"""Prediction difference analysis: the weight of evidence of each window, its values resampled.

Zintgraf, Cohen, Adel & Welling 2017, "Visualizing Deep Neural Network Decisions: Prediction
Difference Analysis", https://arxiv.org/abs/1702.04595

A `window` x `window` square slides by `stride` (the last row and column flush with the edge).
Its pixels are replaced by `samples` draws, and the window's relevance is the weight of evidence
WE = log2 odds p(c|x) - log2 odds p(c|x without the window), p(c|x without the window) being the
mean probability over the draws; a pixel's value is the mean WE of the windows that cover it.

Sampling, both fitted on the explained image alone (the paper fits on its training set; the engine
sees no data set, and a per-image fit keeps an image's map independent of its batch):
  conditional  the paper's approximation: a Gaussian over (window + 2 padding)^2 x C patches, fitted
               on patches of the image (reflect-padded at its border), conditioned on the frame of
               `padding` pixels around the window; the window is drawn from that conditional.
  marginal     every window pixel drawn independently from a Gaussian with the image's per-channel
               mean and standard deviation (the paper's marginal is per location over its data set).
Probabilities are clipped to [1e-6, 1 - 1e-6] before taking odds (the paper Laplace-corrects with
its training set size, unknown here). A sigmoid head's (binary, multi-label) log odds come from its
label's logit instead, exactly: log odds sigmoid(z) = z, so a confident label is never clipped flat.
"""

import numpy as np

from tb_xai_plugin.engine.backends import implements_everywhere
from tb_xai_plugin.engine.perturbation import common, occlusion
from tb_xai_plugin.errors import XaiError

MAX_FIT_PATCHES = 4096  # patches the conditional Gaussian is fitted on, at most (evenly spaced)
MAX_CONDITIONAL_DIMS = 4096  # (window + 2 padding)^2 C: its covariance is inverted per image
COVARIANCE_SHRINK = 1e-3  # ridge added to the patch covariance, relative to its mean variance
PROB_CLIP = 1e-6


def window_and_stride(params, height, width, channels):
    """(window, stride): 0 picks 1/8 of the shorter side (>= 2), capped for conditional sampling, and half the window."""
    window = params["window"] or max(2, min(height, width) // 8)
    if params["sampling"] == "conditional":
        largest = int(np.sqrt(MAX_CONDITIONAL_DIMS / channels)) - 2 * params["padding"]
        if not params["window"]:
            window = max(1, min(window, largest))
        elif window > largest:
            raise XaiError(
                "conditional sampling fits a Gaussian over (window + 2 padding)^2 x %d values; at most %d, so a window "
                "of at most %d pixels here (or marginal sampling)" % (channels, MAX_CONDITIONAL_DIMS, max(0, largest))
            )
    return occlusion.window_and_stride({"window": window, "stride": params["stride"]}, height, width)


def log2_odds(p):
    """log2(p / (1 - p)) with p clipped away from 0 and 1."""
    p = np.clip(p, PROB_CLIP, 1 - PROB_CLIP)
    return np.log2(p) - np.log2(1 - p)


def fit_patch_gaussian(padded, size):
    """(mean [D], covariance [D, D]) of the size x size x C patches of `padded`, D = size^2 C, shrunk."""
    rows, cols = padded.shape[0] - size + 1, padded.shape[1] - size + 1
    step = max(1, int(np.ceil(np.sqrt(rows * cols / MAX_FIT_PATCHES))))
    patches = np.stack([padded[r : r + size, c : c + size].ravel() for r in range(0, rows, step) for c in range(0, cols, step)])
    mean = patches.mean(axis=0)
    centred = patches - mean
    cov = centred.T @ centred / max(1, len(patches) - 1)
    cov += (COVARIANCE_SHRINK * np.trace(cov) / len(cov) + 1e-12) * np.eye(len(cov))
    return mean, cov


class ConditionalSampler:
    """Draws a window given its frame: x_w ~ N(mu_w + K (x_f - mu_f), S_ww - K S_fw), K = S_wf S_ff^-1."""

    def __init__(self, image, window, padding):
        self.window, self.padding = window, padding
        channels = image.shape[-1]
        self.padded = np.pad(image.astype(np.float64), ((padding, padding), (padding, padding), (0, 0)), mode="reflect")
        size = window + 2 * padding
        inner = np.zeros((size, size, channels), bool)
        inner[padding : padding + window, padding : padding + window] = True
        self.inner, frame = inner.ravel(), ~inner.ravel()
        mean, cov = fit_patch_gaussian(self.padded, size)
        self.mu_w, self.mu_f = mean[self.inner], mean[frame]
        self.gain = np.linalg.solve(cov[np.ix_(frame, frame)], cov[np.ix_(frame, self.inner)]).T  # K: [Dw, Df]
        conditional = cov[np.ix_(self.inner, self.inner)] - self.gain @ cov[np.ix_(frame, self.inner)]
        values, vectors = np.linalg.eigh((conditional + conditional.T) / 2)
        self.root = vectors * np.sqrt(np.clip(values, 0, None))  # root @ root.T = conditional covariance
        self.frame = frame

    def draw(self, r, c, z):
        """[n, window, window, C]: draws for the window at (r, c) from standard normals z [n, Dw]."""
        size = self.window + 2 * self.padding
        patch = self.padded[r : r + size, c : c + size].ravel()  # the padded image is offset by padding
        mean = self.mu_w + self.gain @ (patch[self.frame] - self.mu_f)
        return (mean + z @ self.root.T).reshape(len(z), self.window, self.window, -1)


class MarginalSampler:
    """Draws every window pixel independently from N(channel mean, channel std) of the image."""

    def __init__(self, image, window):
        self.window = window
        self.mean, self.std = image.mean(axis=(0, 1)), image.std(axis=(0, 1))

    def draw(self, r, c, z):
        """[n, window, window, C] from standard normals z [n, window^2 C]."""
        z = z.reshape(len(z), self.window, self.window, -1)
        return self.mean + self.std * z


def _difference_one(model, image, target, params, rng, budget_bytes):
    """[H, W]: per pixel, the mean weight of evidence of the windows covering it."""
    height, width, channels = image.shape
    window, stride = window_and_stride(params, height, width, channels)
    if params["sampling"] == "conditional":
        sampler = ConditionalSampler(image, window, params["padding"])
    else:
        sampler = MarginalSampler(image, window)
    boxes = common.windows(height, width, window, stride)
    samples, base_seed = params["samples"], int(rng.integers(2**63))
    draw_size = window * window * channels

    def copies(rows):
        index = np.arange(rows.start, rows.stop)
        out = np.repeat(image[None], len(index), axis=0)
        for box in np.unique(index // samples):
            z = np.random.default_rng([base_seed, box]).standard_normal((samples, draw_size))
            picked = index // samples == box
            r, c = boxes[box]
            out[picked, r : r + window, c : c + window] = sampler.draw(r, c, z[index[picked] % samples])
        return out

    if common.sigmoid_head(model):  # log odds of sigmoid(z) is z: exact from the logits, no clipping
        z = common.scores_of(model, copies, len(boxes) * samples, target, "logit", budget_bytes)
        base = common.scores_of(model, lambda rows: image[None], 1, target, "logit", budget_bytes)[0]
        evidence = base / np.log(2) - log2_odds_of_mean_sigmoid(z.reshape(len(boxes), samples))  # [windows]
    else:
        probs = common.scores_of(model, copies, len(boxes) * samples, target, "probability", budget_bytes)
        base = common.scores_of(model, lambda rows: image[None], 1, target, "probability", budget_bytes)[0]
        evidence = log2_odds(base) - log2_odds(probs.reshape(len(boxes), samples).mean(axis=1))  # [windows]
    return common.mean_over_windows(evidence, boxes, window, (height, width))


def log2_odds_of_mean_sigmoid(z):
    """[W]: log2 (m / (1 - m)), m = mean_j sigmoid(z[w, j]), as log-sum-exps of log sigmoid(+-z): no clipping."""
    from scipy.special import log_expit, logsumexp

    return (logsumexp(log_expit(z), axis=1) - logsumexp(log_expit(-z), axis=1)) / np.log(2)


@implements_everywhere("prediction_difference")
def prediction_difference(model, x, targets, params, layer, neuron, rng, budget_bytes=common.MEMORY_BUDGET_BYTES):
    """map[p] = mean over windows W covering p of log2 odds p(c|x) - log2 odds E_{x_W ~ sampler} p(c|x)."""
    window_and_stride(params, *x.shape[1:])  # refuse bad geometry before any run
    if params["sampling"] == "conditional" and params["padding"] < 1:
        raise XaiError("conditional sampling needs a padding of at least 1 pixel around the window")
    if params["padding"] >= min(x.shape[1:3]):
        raise XaiError("padding %d must be smaller than the image side %d" % (params["padding"], min(x.shape[1:3])))
    return common.per_image(_difference_one, model, x, targets, params, rng, budget_bytes)
