"""How many images fit in one session run, from the layer shapes in the manifest."""

import numpy as np

FLOAT_BYTES = 4
# Forward activations, their gradients and a method's intermediates (LRP keeps a few per layer).
WORK_PER_ACTIVATION = 4


def bytes_per_image(model):
    """Approximate bytes one image costs in one backward pass: every layer output, a few times over."""
    values = int(np.prod(model.input_shape))
    for layer in model.layers:
        shape = layer.get("output_shape") or []
        if all(isinstance(d, int) for d in shape):
            values += int(np.prod(shape)) if shape else 0
    return values * FLOAT_BYTES * WORK_PER_ACTIVATION


def batch_size(model, count, memory_budget, expansion=1):
    """Images per run so that count images x `expansion` copies each stay within memory_budget (>= 1)."""
    per_image = bytes_per_image(model) * max(1, int(expansion))
    return int(max(1, min(count, memory_budget // per_image)))


def batches(count, size):
    """slice objects covering range(count) in steps of `size`."""
    return [slice(start, min(count, start + size)) for start in range(0, count, size)]
