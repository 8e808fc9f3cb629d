"""Grey-box occlusion: how much the target's score drops when a square of the image is covered.

Zeiler & Fergus 2014, "Visualizing and Understanding Convolutional Networks",
https://arxiv.org/abs/1311.2901 (section 4.2).

Windows of `window` x `window` pixels slide by `stride`; the last row and column of windows are
placed flush with the image's edge, so every pixel is covered. The covered square is filled, in
the model's input space (after preprocessing), with each channel's mean over the image ("mean",
a grey box in the image's own colours) or with 0 ("zero"). The score is the target's output
probability (the model's own output) or its logit. Occluded copies are run in batches sized to a
memory budget.
"""

import numpy as np

from tb_xai_plugin.engine.registry import Method, Param, register
from tb_xai_plugin.errors import XaiError

MEMORY_BUDGET_BYTES = 256 * 2**20  # per batch of occluded copies: inputs plus every layer's outputs
BYTES_PER_VALUE = 4  # float32


# The sliding window's controls, read by window_and_stride (prediction difference shares both).
WINDOW_PARAMS = (
    Param("window", "int", 0, "Window (pixels; 0 = 1/8 of the image side)", min=0, max=4096),
    Param("stride", "int", 0, "Stride (pixels; 0 = half the window)", min=0, max=4096),
)


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


def window_starts(size, window, stride):
    """Top-left offsets along one axis: 0, stride, 2 stride, ... and size - window (stride <= window: all covered)."""
    starts = list(range(0, size - window + 1, stride))
    if starts[-1] != size - window:
        starts.append(size - window)
    return starts


def batch_size_for(model, budget_bytes):
    """How many occluded copies fit `budget_bytes`: inputs plus every layer's output, float32."""
    values = int(np.prod(model.input_shape))
    for layer in model.layers:
        values += int(np.prod([d for d in layer["output_shape"] if d is not None] or [1]))
    return max(1, budget_bytes // (values * BYTES_PER_VALUE))


def _score_tensor(model, score):
    """[N, classes] tensor of the model's class probabilities ("probability") or logits ("logit")."""
    return model.logits_model.outputs[0] if score == "logit" else model.probs


def _occlude_one(model, image, target, base, params, budget_bytes):
    """[H, W]: per pixel, mean over windows covering it of `base` (the image's score) - score(occluded)."""
    height, width, _ = image.shape
    window, stride = window_and_stride(params, height, width)
    fill = image.mean(axis=(0, 1)) if params["fill"] == "mean" else np.zeros(image.shape[-1], image.dtype)
    boxes = [(r, c) for r in window_starts(height, window, stride) for c in window_starts(width, window, stride)]
    fetch, feed = _score_tensor(model, params["score"]), model.input
    total = np.zeros((height, width), np.float64)
    count = np.zeros((height, width), np.float64)
    step = batch_size_for(model, budget_bytes)
    for first in range(0, len(boxes), step):
        chunk = boxes[first : first + step]
        copies = np.repeat(image[None], len(chunk), axis=0)  # [B, H, W, C]
        for copy, (r, c) in zip(copies, chunk):
            copy[r : r + window, c : c + window] = fill
        drops = base - model.run(fetch, {feed: copies})[:, target]  # [B]
        for drop, (r, c) in zip(drops, chunk):
            total[r : r + window, c : c + window] += drop
            count[r : r + window, c : c + window] += 1
    return (total / count).astype(np.float32)


def occlusion(model, x, targets, params, layer, neuron, rng, budget_bytes=MEMORY_BUDGET_BYTES):
    """map[p] = mean over windows W covering p of f_c(x) - f_c(x with W filled), f_c the target's score."""
    window_and_stride(params, *x.shape[1:3])  # refuse bad geometry before any run
    base = model.run(_score_tensor(model, params["score"]), {model.input: x})[np.arange(len(x)), targets]
    return np.stack([_occlude_one(model, *args, params, budget_bytes) for args in zip(x, targets, base)])


register(
    Method(
        id="occlusion",
        label="Occlusion",
        family="perturbation",
        description="How much the target's score drops when a sliding square of the image is greyed "
        "out (Zeiler & Fergus 2014); one forward pass per window position.",
        compute=occlusion,
        params=(
            *WINDOW_PARAMS,
            Param("fill", "choice", "mean", "Fill (image mean or zero, in input space)", choices=("mean", "zero")),
            Param("score", "choice", "probability", "Score", choices=("probability", "logit")),
        ),
        signed=True,
        needs_logits=False,
    )
)
