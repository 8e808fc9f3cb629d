"""Grey-box occlusion: how much the target's score drops when a square of the image is covered.

Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks",
https://arxiv.org/abs/1311.2901 (section 4.2).

Windows of `window` x `window` pixels slide by `stride`; the last row and column of windows are
placed flush with the image's edge, so every pixel is covered. The covered square is filled, in
the model's input space (after preprocessing), with each channel's mean over the image ("mean",
a grey box in the image's own colours) or with 0 ("zero"). The score is the target's output
probability (the model's own output) or its logit. Occluded copies are run in batches sized to a
memory budget (common.scores_of), through the backend-neutral model.scores.
"""

import numpy as np

from tb_xai_plugin.engine.backends import implements_everywhere
from tb_xai_plugin.engine.perturbation import common
from tb_xai_plugin.errors import XaiError


def window_and_stride(params, height, width):
    """(window, stride) in pixels; 0 picks an eighth of the shorter side (>= 2) and half the window."""
    window = params["window"] or max(2, min(height, width) // 8)
    stride = params["stride"] or max(1, window // 2)
    if window > min(height, width):
        raise XaiError("occlusion window %d is larger than the image (%d x %d)" % (window, height, width))
    if stride > window:
        raise XaiError(
            "occlusion stride %d is larger than the window %d: pixels between windows would get no value"
            % (stride, window)
        )
    return window, stride


def _occlude_one(model, image, target, base, params, budget_bytes):
    """[H, W]: per pixel, mean over windows covering it of `base` (the image's score) - score(occluded)."""
    height, width, _ = image.shape
    window, stride = window_and_stride(params, height, width)
    fill = image.mean(axis=(0, 1)) if params["fill"] == "mean" else np.zeros(image.shape[-1], image.dtype)
    boxes = common.windows(height, width, window, stride)

    def copies(rows):
        out = np.repeat(image[None], rows.stop - rows.start, axis=0)  # [B, H, W, C]
        for copy, (r, c) in zip(out, boxes[rows]):
            copy[r : r + window, c : c + window] = fill
        return out

    drops = base - common.scores_of(model, copies, len(boxes), target, params["score"], budget_bytes)  # [windows]
    return common.mean_over_windows(drops, boxes, window, (height, width))


@implements_everywhere("occlusion")
def occlusion(model, x, targets, params, layer, neuron, rng, budget_bytes=common.MEMORY_BUDGET_BYTES):
    """map[p] = mean over windows W covering p of f_c(x) - f_c(x with W filled), f_c the target's score."""
    window_and_stride(params, *x.shape[1:3])  # refuse bad geometry before any run
    base = model.scores(x, params["score"])[np.arange(len(x)), targets]
    return np.stack([_occlude_one(model, *args, params, budget_bytes) for args in zip(x, targets, base)])
