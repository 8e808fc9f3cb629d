"""Slow numpy references for the engine's own methods, written from the definitions with explicit loops.

Layouts: images [H, W, C]; kernels [kh, kw, C_in, C_out] (Keras); 'valid' convolutions only
(pad the input first for 'same'), as Keras computes them: cross-correlation.
"""

import numpy as np


def conv2d(x, kernel, bias, stride=1):
    """Valid cross-correlation: out[i, j, o] = sum_{a,b,c} x[i*s+a, j*s+b, c] * kernel[a, b, c, o] + bias[o]."""
    kh, kw, _, channels = kernel.shape
    rows = (x.shape[0] - kh) // stride + 1
    cols = (x.shape[1] - kw) // stride + 1
    out = np.zeros((rows, cols, channels), np.float64)
    for i in range(rows):
        for j in range(cols):
            patch = x[i * stride : i * stride + kh, j * stride : j * stride + kw, :]
            out[i, j] = np.tensordot(patch, kernel, axes=([0, 1, 2], [0, 1, 2])) + bias
    return out


def conv2d_input_grad(grad_out, kernel, input_shape, stride=1):
    """d(sum grad_out * conv2d(x)) / dx for the valid cross-correlation above, [H, W, C_in]."""
    kh, kw = kernel.shape[:2]
    grad = np.zeros(input_shape, np.float64)
    for i in range(grad_out.shape[0]):
        for j in range(grad_out.shape[1]):
            grad[i * stride : i * stride + kh, j * stride : j * stride + kw, :] += kernel @ grad_out[i, j]
    return grad


def pad_same_3x3(x):
    """Zero-pad one pixel on each side: a 3x3 'same' convolution at stride 1 is then a valid one."""
    return np.pad(x, ((1, 1), (1, 1), (0, 0)))


def relu(x):
    """max(x, 0)."""
    return np.maximum(x, 0)


def resize_bilinear(image, height, width):
    """[h, w] -> [height, width], bilinear with half-pixel centres and clamped edges (tf.image.resize)."""
    h, w = image.shape

    def taps(out_size, in_size):
        src = np.clip((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0, in_size - 1)
        low = np.floor(src).astype(int)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, src - low

    r0, r1, fr = taps(height, h)
    c0, c1, fc = taps(width, w)
    out = np.zeros((height, width), np.float64)
    for i in range(height):
        for j in range(width):
            top = image[r0[i], c0[j]] * (1 - fc[j]) + image[r0[i], c1[j]] * fc[j]
            bottom = image[r1[i], c0[j]] * (1 - fc[j]) + image[r1[i], c1[j]] * fc[j]
            out[i, j] = top * (1 - fr[i]) + bottom * fr[i]
    return out


def occlusion(predict, image, target, window, stride, fill):
    """map[p] = mean over the windows covering p of predict(x)[target] - predict(x, window filled)[target]."""
    height, width = image.shape[:2]

    def starts(size):
        found = list(range(0, size - window + 1, stride))
        return found if found[-1] == size - window else found + [size - window]

    base = predict(image[None])[0, target]
    total = np.zeros((height, width))
    count = np.zeros((height, width))
    for r in starts(height):
        for c in starts(width):
            occluded = image.copy()
            occluded[r : r + window, c : c + window] = fill
            total[r : r + window, c : c + window] += base - predict(occluded[None])[0, target]
            count[r : r + window, c : c + window] += 1
    return total / count
