"""What PatternNet / PatternAttribution share across backends: the fitted patterns and their math.

Kindermans et al. 2018, https://arxiv.org/abs/1705.05598. Each backend's pattern module gathers the
statistics of every kernel layer's units over the fitting set (its own forward pass) and turns them
into FittedPatterns here, so both backends fit the same patterns from the same sums and the worker
keeps them in model.cache[FIT_KEY] whichever backend computes. Numpy, and one TensorFlow op builder
(unit_inputs) that imports TensorFlow when called.
"""

import dataclasses

import numpy as np

from tb_xai_plugin.errors import XaiError

FIT_KEY = ("pattern", "fitted")
KERNEL_LAYERS = ("Dense", "Conv2D")
PASS_LAYERS = (
    "InputLayer", "Flatten", "Reshape", "Dropout", "MaxPooling2D", "AveragePooling2D",
    "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ReLU", "Activation",
)
ACTIVATIONS = ("relu", "linear", "softmax")  # softmax only as the model's output (explained as logits)
PATCH_EXPANSION = 9  # a 3x3 convolution's patches hold 9 copies of its input
# Fitting keeps, per kernel weight, 4 float64 sums per estimator for the run's batch and the running
# totals, and 2 float32 patterns: 72 bytes. VGG16 (138M weights) would need ~10 GB.
FIT_BYTES_PER_WEIGHT = 72
MAX_FIT_BYTES = 2 * 2**30


@dataclasses.dataclass
class FittedPatterns:
    """Patterns of every kernel layer, fitted on one set of images."""

    fingerprint: str  # sha256 of the fitting set (preprocessed float32 bytes)
    count: int  # images in the fitting set
    weights_sha256: str  # the checkpoint they belong to
    linear: dict  # layer name -> a [D, K] (linear estimator)
    relu: dict  # layer name -> a [D, K] (two-component estimator, positive regime)


def reason_too_large(kernel_shapes, max_bytes=MAX_FIT_BYTES):
    """None if fitting kernels of these shapes needs at most `max_bytes` of statistics, else the figure."""
    weights = sum(int(np.prod(shape)) for shape in kernel_shapes)
    if weights * FIT_BYTES_PER_WEIGHT > max_bytes:
        return "fitting patterns for %.1fM weights needs ~%.1f GB of statistics (at most %.0f GB here)" % (
            weights / 1e6, weights * FIT_BYTES_PER_WEIGHT / 1e9, max_bytes / 1e9)
    return None


def patterns_from_stats(kernel, n, sum_x, sum_y, sum_xy):
    """a [D, K] = cov(x, y) / (w^T cov(x, y)) per unit; 0 for units with < 2 samples or no variance."""
    count = np.maximum(n, 1)
    cov = sum_xy / count - (sum_x / count) * (sum_y / count)  # [D, K]
    denominator = np.sum(kernel * cov, axis=0)  # w^T cov(x, y) = var(y): [K]
    usable = (n >= 2) & (np.abs(denominator) > 1e-12 * np.maximum(1.0, np.abs(cov).max(axis=0)))
    return np.where(usable, cov / np.where(usable, denominator, 1.0), 0.0).astype(np.float32)


def add(a, b):
    """Elementwise sum of two nested dicts / tuples of arrays."""
    if isinstance(a, dict):
        return {k: add(a[k], b[k]) for k in a}
    if isinstance(a, tuple):
        return tuple(add(u, v) for u, v in zip(a, b))
    return a + b


def fitted_from_totals(totals, kernels, fingerprint, count, weights_sha256):
    """FittedPatterns from {layer: {estimator: sums}} and {layer: kernel}; XaiError if a layer has no pattern."""
    fitted = FittedPatterns(fingerprint=fingerprint, count=count, weights_sha256=weights_sha256, linear={}, relu={})
    for name, by_estimator in totals.items():
        kernel = kernels[name].reshape(-1, kernels[name].shape[-1])
        for estimator, stats in by_estimator.items():
            getattr(fitted, estimator)[name] = patterns_from_stats(kernel, *stats)
        if not fitted.linear[name].any():
            raise XaiError("no pattern of layer %r can be fitted on these %d images: its units do not vary over them" % (name, count))
    return fitted


def activation_name(layer):
    """The name of a layer's activation function ('linear' if it has none)."""
    return getattr(getattr(layer, "activation", None), "__name__", "linear")


def uses_relu_estimator(layers, index, estimator):
    """True if layers[index] gets the two-component estimator: estimator 'relu' and a ReLU on its output."""
    layer = layers[index]
    follower = layers[index + 1] if index + 1 < len(layers) else None
    return estimator == "relu" and (
        activation_name(layer) == "relu"
        or type(follower).__name__ == "ReLU"
        or (type(follower).__name__ == "Activation" and activation_name(follower) == "relu")
    )


def unit_inputs(layer, inputs):
    """[M, D]: the input vector of every unit position: rows of a dense input, patches of a conv input."""
    import tensorflow as tf

    if type(layer).__name__ == "Dense":
        return inputs
    kh, kw = layer.kernel_size
    patches = tf.image.extract_patches(
        inputs, sizes=[1, kh, kw, 1], strides=[1, *layer.strides, 1], rates=[1, *layer.dilation_rate, 1],
        padding=layer.padding.upper(),
    )
    return tf.reshape(patches, [-1, kh * kw * int(inputs.shape[-1])])
