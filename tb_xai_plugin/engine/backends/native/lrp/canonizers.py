"""Canonizers: rewrite a walk into one with the same function whose steps all have an LRP rule.

BatchNormalization (inference: y = k * z + c, k = gamma / sqrt(var + eps), c = beta - mean * k):
- folded into the linear step that produces its input, when that step's output feeds only the
  batch norm (Conv -> BN, Dense -> BN): W' = W * k on the output channels, b' = b * k + c; the rule
  then sees one linear layer, as Zennit's canonizers and the LRP literature do;
- otherwise (a BN after an Add, a Concatenate or an activation) it becomes an elementwise linear
  step z = k * x + c, which the composite's batch-norm rule explains.
The model itself is never changed: the new weights are new tensors.
"""

import dataclasses


def canonize(walk):
    """A walk with every BatchNormalization folded into its linear producer or made an elementwise linear step."""
    for step in list(walk.steps):
        if type(step.layer).__name__ == "BatchNormalization" and step.kind == "layer":
            walk = _fold_or_linearize(walk, step)
    return walk


def _fold_or_linearize(walk, bn):
    """The walk with batch-norm step `bn` folded into its producer if possible, else made linear."""
    scale, shift = batch_norm_affine(bn.layer)
    producer = walk.producer(bn.inputs[0])
    if _foldable(walk, producer, bn):
        kernels, bias = fold(producer, scale, shift)
        folded = dataclasses.replace(producer, outputs=bn.outputs, kernels=kernels, bias=bias, name=producer.name + "+" + bn.name)
        walk = walk.replace(producer, [folded])
        return walk.replace(bn, [])
    linear = dataclasses.replace(bn, kind="linear", kernels=(scale,), bias=shift)
    return walk.replace(bn, [linear])


def _foldable(walk, producer, bn):
    """Whether bn normalizes the channels of a linear step's output read by nothing else."""
    if producer is None or producer.kind != "linear" or type(producer.layer).__name__ == "BatchNormalization":
        return False
    if getattr(producer.layer, "data_format", "channels_last") != "channels_last":
        return False
    return _channels_last(bn.layer) and len(walk.consumers(producer.outputs[0])) == 1


def _channels_last(layer):
    """Whether a batch norm normalizes the last axis."""
    try:
        rank = len(layer.input.shape)
    except (AttributeError, ValueError):
        rank = 0
    return layer.axis in (-1, rank - 1)


def batch_norm_affine(layer):
    """(k, c) with BN(z) = k * z + c at inference: k = gamma / sqrt(var + eps), c = beta - mean * k."""
    from keras import ops

    root = ops.sqrt(layer.moving_variance + layer.epsilon)
    k = layer.gamma / root if layer.scale else 1.0 / root
    c = layer.beta - layer.moving_mean * k if layer.center else -layer.moving_mean * k
    return ops.convert_to_tensor(k), ops.convert_to_tensor(c)


def fold(step, scale, shift):
    """(kernels, bias) of linear `step` followed by z -> scale * z + shift, per output channel."""
    from keras import ops

    name = type(step.layer).__name__
    kernels = list(step.kernels)
    if name.startswith("DepthwiseConv"):
        multiplier = kernels[0].shape[-1]
        kernels[0] = kernels[0] * ops.reshape(scale, (-1, multiplier))
    else:
        kernels[-1] = kernels[-1] * scale
    bias = shift if step.bias is None else step.bias * scale + shift
    return tuple(kernels), bias
