"""What the perturbation methods share: feature segments, sliding windows, fill values, scoring in bounded batches.

Occlusion, LIME, Shapley value sampling and prediction difference analysis all score many altered
copies of one image through the backend-neutral forward call model.scores(x, score) (every backend's
loaded model has it), so one implementation serves every backend. Copies are built and run a chunk
at a time (batching.forward_batch_size under a byte budget), so memory does not grow with the number
of samples. Every image draws its random numbers from the same per-call stream (per_image), so an
image's map does not depend on the batch it is in.
"""

import numpy as np

from tb_xai_plugin import model_info
from tb_xai_plugin.engine import batching

MEMORY_BUDGET_BYTES = 256 * 2**20  # per batch of altered copies: inputs plus every layer's outputs
BLUR_SIGMA_FRACTION = 1 / 16  # "blur" fill: Gaussian sigma as a fraction of the image's shorter side


def per_image(one, model, x, targets, params, rng, budget_bytes):
    """[N, H, W]: one(model, image, target, params, rng_n, budget_bytes) per image, every rng_n replaying one stream drawn from rng."""
    state = int(rng.integers(2**63))
    return np.stack([one(model, image, target, params, np.random.default_rng(state), budget_bytes) for image, target in zip(x, targets)])


def segment(image, params):
    """int [H, W] labels 0..S-1: SLIC superpixels (scikit-image) or a grid of about `segments` patches."""
    height, width = image.shape[:2]
    if params["segmentation"] == "grid":
        return grid_segments(height, width, params["segments"])
    from skimage.segmentation import slic

    low, high = image.min(), image.max()
    scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    labels = slic(
        scaled.astype(np.float64), n_segments=params["segments"], compactness=params["compactness"],
        channel_axis=-1, start_label=0, enforce_connectivity=True, convert2lab=False,
    )
    return np.unique(labels, return_inverse=True)[1].reshape(height, width)  # labels 0..S-1, none empty


def grid_segments(height, width, count):
    """int [H, W]: square patches of side round(sqrt(H W / count)) (at least 1), labelled row by row."""
    side = max(1, int(round(np.sqrt(height * width / count))))
    rows, cols = np.arange(height) // side, np.arange(width) // side
    return (rows[:, None] * (cols[-1] + 1) + cols[None, :]).astype(np.int64)


def fill_image(image, fill):
    """[H, W, C] what removed pixels become: each channel's mean, zeros, or the image Gaussian-blurred."""
    if fill == "mean":
        return np.broadcast_to(image.mean(axis=(0, 1)), image.shape).astype(image.dtype)
    if fill == "zero":
        return np.zeros_like(image)
    from scipy.ndimage import gaussian_filter

    sigma = max(1.0, BLUR_SIGMA_FRACTION * min(image.shape[:2]))
    return gaussian_filter(image, sigma=(sigma, sigma, 0), mode="nearest").astype(image.dtype)


def masked_scores(model, image, fill, labels, keep, count, target, score, budget_bytes=MEMORY_BUDGET_BYTES):
    """float64 [count]: the target's score on image with the segments where keep(rows) [B, S] is False filled."""
    return scores_of(model, lambda rows: np.where(keep(rows)[:, labels][..., None], image, fill), count, target, score, budget_bytes)


def scores_of(model, make_copies, count, target, score, budget_bytes=MEMORY_BUDGET_BYTES):
    """float64 [count]: the target's score on make_copies(slice) -> [B, H, W, C], run a bounded chunk at a time.

    A sigmoid head's (binary, multi-label) probability is sigmoid(z) of its label's own logit, taken in float64:
    float32 rounds p to 1.0 from z > 17, where every perturbation would score the same (a constant map).
    """
    from_logit = score == "probability" and sigmoid_head(model)
    out = np.empty(count, np.float64)
    for rows in batching.batches(count, batching.forward_batch_size(model, budget_bytes)):
        out[rows] = model.scores(make_copies(rows).astype(np.float32), "logit" if from_logit else score)[:, target]
    return 1.0 / (1.0 + np.exp(-out)) if from_logit else out


def sigmoid_head(model):
    """Whether the model's probabilities are a sigmoid per class (binary and multi-label heads), not a softmax."""
    return getattr(model, "head", None) in model_info.SIGMOID_HEADS


def window_starts(size, window, stride):
    """Top-left offsets along one axis: 0, stride, 2 stride, ... and size - window (stride <= window: all covered)."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def windows(height, width, window, stride):
    """[(r, c)]: top-left corners of the window x window squares sliding by stride, row by row, the last flush with the edge."""
    return [(r, c) for r in window_starts(height, window, stride) for c in window_starts(width, window, stride)]


def mean_over_windows(values, corners, window, shape):
    """float32 [H, W]: map[p] = mean of values[k] over the windows at corners[k] that cover p."""
    total, count = np.zeros(shape, np.float64), np.zeros(shape, np.float64)
    for value, (r, c) in zip(values, corners):
        total[r : r + window, c : c + window] += value
        count[r : r + window, c : c + window] += 1
    return (total / count).astype(np.float32)


def paint(values, labels):
    """float32 [H, W]: each pixel gets the value of its segment."""
    return np.asarray(values, np.float32)[labels]
