"""DeepLIFT's reference input x0, the same for both backends (pure numpy / scipy, no TensorFlow)."""

import numpy as np


def reference(model, x, params):
    """[N, H, W, C] reference x0: zeros, a black image preprocessed, x blurred, or each image's channel means."""
    kind = params["reference"]
    if kind == "zero":
        return np.zeros_like(x)
    if kind == "black":
        return np.broadcast_to(model.preprocess(np.zeros((1,) + tuple(model.input_shape), np.float32)), x.shape).copy()
    if kind == "image_mean":
        return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).copy()
    from scipy.ndimage import gaussian_filter

    sigma = params["blur_sigma"]
    return gaussian_filter(x, sigma=(0, sigma, sigma, 0), mode="nearest").astype(np.float32)
