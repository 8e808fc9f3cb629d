"""Predictions and layer activations of a loaded model on stored images, batched."""

import numpy as np

from tb_xai_plugin.engine import batching
from tb_xai_plugin.errors import XaiError

PREDICT_BUDGET = 256 * 2**20


def probabilities(model, x, batch_size=None):
    """float32 [N, K] class probabilities of preprocessed inputs x, run in batches."""
    size = batch_size or batching.batch_size(model, len(x), PREDICT_BUDGET)
    parts = [model.run(model.probs, {model.input: x[s]}) for s in batching.batches(len(x), size)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, model.num_classes), np.float32)


def predict(model, images, top_k=5, return_probs=False, batch_size=None):
    """{"top_classes": int64 [N,k], "top_scores": float32 [N,k], "probs"?: [N,K]}, k = min(top_k, K)."""
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise XaiError("top_k must be a positive integer, not %r" % (top_k,))
    top_k = min(int(top_k), model.num_classes)
    _check_batch_size(batch_size)
    probs = probabilities(model, model.preprocess(images), batch_size)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    out = {"top_classes": order.astype(np.int64), "top_scores": np.take_along_axis(probs, order, axis=1)}
    if return_probs:
        out["probs"] = probs
    return out


def activation_means(model, images, layer, neuron=None, batch_size=None):
    """float32 [N]: mean of `layer`'s output per image, or of its channel `neuron` (last axis)."""
    _check_batch_size(batch_size)
    x = model.preprocess(images)
    mean = model.cache.get_or_build(("activation_mean", layer, neuron), lambda: _mean_op(model, layer, neuron))
    size = batch_size or batching.batch_size(model, len(x), PREDICT_BUDGET)
    parts = [model.run(mean, {model.input: x[s]}) for s in batching.batches(len(x), size)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def probabilities_and_activation_means(model, images, layer, neuron=None, batch_size=None):
    """(float32 [N, K] probabilities, float32 [N] activation_means) from one forward pass per batch."""
    _check_batch_size(batch_size)
    x = model.preprocess(images)
    mean = model.cache.get_or_build(("activation_mean", layer, neuron), lambda: _mean_op(model, layer, neuron))
    size = batch_size or batching.batch_size(model, len(x), PREDICT_BUDGET)
    parts = [model.run((model.probs, mean), {model.input: x[s]}) for s in batching.batches(len(x), size)]
    if not parts:
        return np.zeros((0, model.num_classes), np.float32), np.zeros(0, np.float32)
    return np.concatenate([p for p, _ in parts]).astype(np.float32), np.concatenate([m for _, m in parts]).astype(np.float32)


def _mean_op(model, layer, neuron):
    """Tensor [N]: the mean over all non-batch axes of a layer's output (of one channel if neuron)."""
    import tensorflow as tf

    output = model.layer_output(layer)
    with model.in_graph():
        if neuron is not None:
            channels = int(output.shape[-1])
            check_neuron(neuron, channels, layer)
            output = output[..., int(neuron)]
        return tf.reduce_mean(tf.reshape(output, [tf.shape(output)[0], -1]), axis=1)


def check_neuron(neuron, channels, layer):
    """XaiError unless neuron is an integer channel index in [0, channels)."""
    if isinstance(neuron, bool) or not isinstance(neuron, (int, np.integer)) or not 0 <= neuron < channels:
        raise XaiError("neuron must be a channel of layer %r: an integer in [0, %d), not %r" % (layer, channels, neuron))


def _check_batch_size(batch_size):
    """XaiError unless batch_size is None or a positive integer."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise XaiError("batch_size must be a positive integer, not %r" % (batch_size,))
