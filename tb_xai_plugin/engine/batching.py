"""How many images fit in one run, from the layer shapes in the manifest: the engine's one memory model.

An image costs its input plus every layer's output (float32), times how many copies of those a run
keeps: one for a forward pass (predictions, perturbation methods' copies), WORK_PER_ACTIVATION for a
backward pass (activations, their gradients and a method's intermediates; LRP keeps a few per layer).
"""

import numpy as np

FLOAT_BYTES = 4
FORWARD_WORK = 1
WORK_PER_ACTIVATION = 4


def values_per_image(model):
    """Float values of one image's input plus every layer's output (unknown dimensions count as 1)."""
    values = int(np.prod(model.input_shape))
    for layer in model.layers:
        shape = layer.get("output_shape") or []
        values += int(np.prod([d for d in shape if isinstance(d, int)] or [1])) if shape else 0
    return values


def bytes_per_image(model, work=WORK_PER_ACTIVATION):
    """Approximate bytes one image costs in one run: every layer output, `work` times over."""
    return values_per_image(model) * FLOAT_BYTES * work


def batch_size(model, count, memory_budget, expansion=1, work=WORK_PER_ACTIVATION):
    """Images per run so that count images x `expansion` copies each stay within memory_budget (>= 1)."""
    per_image = bytes_per_image(model, work) * max(1, int(expansion))
    return int(max(1, min(count, memory_budget // per_image)))


def forward_batch_size(model, memory_budget):
    """Copies per forward-only run within memory_budget (>= 1): perturbation methods' chunks."""
    return int(max(1, memory_budget // bytes_per_image(model, FORWARD_WORK)))


def batches(count, size):
    """slice objects covering range(count) in steps of `size`."""
    return [slice(start, min(count, start + size)) for start in range(0, count, size)]
