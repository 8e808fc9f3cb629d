"""Predictions and layer activations of a loaded model on stored images, batched; any backend.

The backend's loaded model does the forward passes: model.probabilities(x) and
model.probabilities_and_means(x, layer, neuron) (engine.checkpoint describes the interface).
"""

import numpy as np

from tb_xai_plugin.engine import batching, layers
from tb_xai_plugin.errors import XaiError

PREDICT_BUDGET = 256 * 2**20


def probabilities(model, x, batch_size=None):
    """float32 [N, K] class probabilities of preprocessed inputs x, run in batches."""
    size = batch_size or batching.batch_size(model, len(x), PREDICT_BUDGET, work=batching.FORWARD_WORK)
    parts = [model.probabilities(x[s]) for s in batching.batches(len(x), size)]
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
    return probabilities_and_activation_means(model, images, layer, neuron, batch_size)[1]


def probabilities_and_activation_means(model, images, layer, neuron=None, batch_size=None):
    """(float32 [N, K] probabilities, float32 [N] activation_means) from one forward pass per batch."""
    _check_batch_size(batch_size)
    _check_layer_and_neuron(model, layer, neuron)
    x = model.preprocess(images)
    size = batch_size or batching.batch_size(model, len(x), PREDICT_BUDGET, work=batching.FORWARD_WORK)
    parts = [model.probabilities_and_means(x[s], layer, neuron) for s in batching.batches(len(x), size)]
    if not parts:
        return np.zeros((0, model.num_classes), np.float32), np.zeros(0, np.float32)
    return np.concatenate([p for p, _ in parts]).astype(np.float32), np.concatenate([m for _, m in parts]).astype(np.float32)


def _check_layer_and_neuron(model, layer, neuron):
    """XaiError unless `layer` is in the manifest and `neuron` is None or one of its channels."""
    found = [entry for entry in model.layers if entry["name"] == layer]
    if not found:
        raise XaiError("unknown layer %r; this model has %s" % (layer, ", ".join(e["name"] for e in model.layers)))
    if neuron is not None:
        shape = found[0].get("output_shape") or []
        layers.check_neuron(neuron, shape[-1] if shape and isinstance(shape[-1], int) else 0, layer)


def _check_batch_size(batch_size):
    """XaiError unless batch_size is None or a positive integer."""
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise XaiError("batch_size must be a positive integer, not %r" % (batch_size,))
