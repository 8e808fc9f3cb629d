"""First-order bounds on float32 rounding, for tolerances that hold on any CPU and any kernel choice.

A sum of n float32 terms is within n eps sum|term| of the exact sum whatever the order the kernel
adds them in (Higham, "Accuracy and Stability of Numerical Algorithms", eq. 3.5); two runs of the same
model on the same input may differ by twice that. A network's logit errors add up layer by layer, each
layer's own error carried forward by the absolute values of the later weights.
"""

import numpy as np

EPS = float(np.finfo(np.float32).eps)


def dense_logit_error(weights, x):
    """|dz| <= n eps max_k sum_i |w_i x_ki|: the error of one float32 dot product of length n = weights.size per row of x."""
    terms = np.abs(np.asarray(weights, np.float64).ravel()) * np.abs(np.asarray(x, np.float64).reshape(len(x), -1))
    return weights.size * EPS * terms.sum(axis=1).max()


def network_logit_error(keras_model, weights, x):
    """|dz| <= eps (sum_l n_l) max A(x): n_l the accumulation length of layer l, A the logits of the network with |W|, |b|
    and no ReLU on |x| [N, H, W, C] (an upper bound of every |pre-activation| and of the error each layer passes on).

    Knows Conv2D (odd kernel, 'same'), Dense and GlobalAveragePooling2D (activations ignored, the final one too);
    `weights` are keras_model.weights' values, in that order."""
    values = {id(variable): value for variable, value in zip(keras_model.weights, weights)}
    h, total_length = np.abs(np.asarray(x, np.float64)), 0
    for layer in keras_model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "Dense"):
            kernel = np.abs(values[id(layer.kernel)]).astype(np.float64)
            bias = np.abs(values[id(layer.bias)]) if layer.use_bias else 0.0
            total_length += kernel.size // kernel.shape[-1] + 1  # the products, then the bias
            h = (_abs_conv(h, kernel) if kind == "Conv2D" else h @ kernel) + bias
        elif kind == "GlobalAveragePooling2D":
            total_length += int(np.prod(h.shape[1:3])) + 1  # the sum, then the division
            h = h.mean(axis=(1, 2))
        elif kind != "InputLayer":
            raise ValueError("no error bound for a %s layer" % kind)
    return EPS * total_length * h.max()


def _abs_conv(h, kernel):
    """A 'same' convolution of h [N, H, W, C] with an odd kernel [kh, kw, C, O], zero padded."""
    kh, kw = kernel.shape[:2]
    padded = np.pad(h, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kh, kw), axis=(1, 2))  # [N, H, W, C, kh, kw]
    return np.einsum("nhwcij,ijco->nhwo", windows, kernel)


def log2_odds_gap(p, logit_error):
    """|d log2 odds p| between two float32 runs of a two-class softmax: (4 dz + 4 eps / (p (1 - p))) / ln 2.

    Each run's logit gap is within 2 dz, and each float32 softmax (exp, sum, divide: 3 roundings of eps/2) within 2 eps p."""
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return (4 * logit_error + 4 * EPS / (p * (1 - p))) / np.log(2)


def probability_gap(logit_error):
    """|dp| between two float32 runs of a two-class softmax: p (1 - p) 4 dz + 4 eps p <= dz + 4 eps (see log2_odds_gap)."""
    return logit_error + 4 * EPS
