"""The native backend's preprocessing canonizer: a Keras 3 model's leading elementwise preprocessing, folded out.

    fold(keras_model) -> (body, folded)
        folded  None (nothing to fold: body is keras_model), or (scale, offset) float32 [C] with
                keras_model(x) == body(x * scale + offset) per channel (checkpoint.apply_folded)
        body    the model from its first real layer: a new Functional model over the same layer objects
                (no weight copies), named as the model; keras_model itself is left as it was

The chain starts at the model's one input and takes, while each value has a single reader:
- Rescaling; Normalization (invert=False; mean and variance per channel or one for all);
- Keras 3 op nodes x * c, x / c, x + c, x - c, c * x, c + x, c - x with a scalar or per-channel
  constant c (keras.applications' preprocess_input inside a model: x / 127.5 - 1, (x / 255 - mean) / std);
- layers that are the identity at inference (augmentation, noise: model_info.INFERENCE_IDENTITY_TYPES);
- a nested model made only of these (an augmentation Sequential), folded whole.
A nested model met first that starts with such layers (EfficientNetB0: Rescaling, Normalization) has
them folded too: it is rebuilt from its first real layer under its own name, and the outer model
calls the rebuilt one. Anything else ends the chain (a channel reversal x[..., ::-1], c / x, a
per-pixel constant, a value read twice) and stays in the model. A chain without an affine step
(augmentation only) folds nothing.
"""

import dataclasses

import numpy as np

from tb_xai_plugin import model_info

AFFINE_OPS = ("Add", "Subtract", "Multiply", "TrueDivide", "Divide")  # Keras 3 op classes, keras.src.ops.numpy
AFFINE_LAYERS = ("Rescaling", "Normalization")


def is_affine_op(operation):
    """Whether a Keras 3 graph operation is an op node +, -, * or / (elementwise affine when its other operand is a constant)."""
    return type(operation).__module__.startswith("keras.src.ops") and type(operation).__name__ in AFFINE_OPS


@dataclasses.dataclass
class Chain:
    """A graph's leading preprocessing: x -> x * scale + offset (float64 [C]) up to value `end`."""

    scale: np.ndarray
    offset: np.ndarray
    end: object  # the KerasTensor the first real layer reads
    affine: bool = False  # whether some step is not the identity
    whole: bool = False  # whether the chain is the whole graph (end is its output)
    substitutes: dict = dataclasses.field(default_factory=dict)  # id(nested model) -> its rebuilt body

    def then(self, scale, offset):
        """The chain followed by x -> x * scale + offset."""
        self.scale, self.offset = scale * self.scale, scale * self.offset + offset


def fold(keras_model):
    """(the model from its first real layer, (scale, offset) float32 [C]), or (keras_model, None) when nothing folds."""
    graph = _functional(keras_model)
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return keras_model, None
    chain = leading_chain(graph)
    if not chain.affine or chain.whole:
        return keras_model, None
    body = rebuild(graph, chain, keras_model.name)
    return body, (chain.scale.astype(np.float32), chain.offset.astype(np.float32))


def leading_chain(graph):
    """The Chain of elementwise affine / identity steps from the graph's one input (see the module docstring)."""
    channels = int(graph.inputs[0].shape[-1])
    chain = Chain(np.ones(channels), np.zeros(channels), graph.inputs[0])
    readers = _readers(graph)
    outputs = {id(t) for t in graph.outputs}
    while id(chain.end) not in outputs:
        nodes = readers.get(id(chain.end), [])
        if len(nodes) != 1 or len(nodes[0].arguments.keras_tensors) != 1 or len(nodes[0].outputs) != 1:
            break
        node = nodes[0]
        if _is_model(node.operation):
            inner = leading_chain(_functional(node.operation))
            if not inner.whole and (not inner.affine or _calls(graph, node.operation) > 1):
                break  # a base called twice keeps its preprocessing: the rebuilt one would serve both calls
            chain.then(inner.scale, inner.offset)
            chain.affine = chain.affine or inner.affine
            if not inner.whole:
                chain.substitutes = {id(node.operation): rebuild(_functional(node.operation), inner, node.operation.name)}
                break
        else:
            step = elementwise_affine(node, chain.end, channels)
            if step is None:
                break
            chain.then(*step)
            chain.affine = chain.affine or type(node.operation).__name__ not in model_info.INFERENCE_IDENTITY_TYPES
        chain.end = node.outputs[0]
    chain.whole = id(chain.end) in outputs
    return chain


def elementwise_affine(node, tensor, channels):
    """(a, b) float64 [C] with node's output = a * tensor + b per channel, or None if it is not such a step."""
    operation = node.operation
    name = type(operation).__name__
    if tuple(node.outputs[0].shape) != tuple(tensor.shape):
        return None
    if name in model_info.INFERENCE_IDENTITY_TYPES:
        return np.ones(channels), np.zeros(channels)
    if name == "Rescaling":
        return _pair(_per_channel(operation.scale, channels), _per_channel(operation.offset, channels))
    if name == "Normalization" and not operation.invert:
        return _normalization(operation, channels)
    if is_affine_op(operation):
        return _op_node(node, tensor, channels)
    return None


def _normalization(layer, channels):
    """Normalization's y = (x - mean) / max(sqrt(variance), keras epsilon) as (1 / std, -mean / std)."""
    import keras

    mean, variance = _per_channel(layer.mean, channels), _per_channel(layer.variance, channels)
    if mean is None or variance is None:
        return None
    std = np.maximum(np.sqrt(variance), keras.backend.epsilon())
    return 1.0 / std, -mean / std


def _op_node(node, tensor, channels):
    """(a, b) for an op node tensor (+ - * /) constant, or constant (+ - *) tensor; None otherwise (c / x)."""
    args = list(node.arguments.args)
    if node.arguments.kwargs or len(args) != 2 or sum(a is tensor for a in args) != 1:
        return None
    first = args[0] is tensor
    c = _per_channel(args[1] if first else args[0], channels)
    if c is None:
        return None
    name = type(node.operation).__name__
    one, zero = np.ones(channels), np.zeros(channels)
    if name == "Add":
        return one, c
    if name == "Subtract":
        return (one, -c) if first else (-one, c)
    if name == "Multiply":
        return c, zero
    return (1.0 / c, zero) if first else None


def _per_channel(value, channels):
    """A constant as float64 [C]: one value for all channels, or one per channel on the last axis; None otherwise."""
    try:
        c = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        return None
    if c.size == 1:
        return np.full(channels, float(c.reshape(-1)[0]))
    if c.ndim and c.shape[-1] == channels and c.size == channels:
        return c.reshape(channels)
    return None


def _pair(a, b):
    """(a, b), or None if either is None."""
    return None if a is None or b is None else (a, b)


def rebuild(graph, chain, name):
    """A Functional model from chain.end to the graph's outputs, re-calling its layers (nested models per chain.substitutes)."""
    import keras

    start = keras.Input(batch_shape=tuple(chain.end.shape), dtype=chain.end.dtype)
    outputs = replay(graph, {id(chain.end): start}, chain.substitutes)
    return keras.Model(start, outputs[0] if len(outputs) == 1 else outputs, name=name)


def replay(graph, values, substitutes):
    """The graph's outputs recomputed symbolically from `values` ({id(KerasTensor): new tensor}): every node that reads only known values is called again."""
    import keras

    values = dict(values)
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            tensors = node.arguments.keras_tensors
            if node.is_input or node.operation is None or not tensors or not all(id(t) in values for t in tensors):
                continue
            args, kwargs = node.arguments.fill_in(values)
            operation = substitutes.get(id(node.operation), node.operation)
            values.update(zip(map(id, node.outputs), keras.tree.flatten(operation(*args, **kwargs))))
    return [values[id(t)] for t in graph.outputs]


def _readers(graph):
    """{id(KerasTensor): [the graph's nodes that read it]}."""
    found = {}
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            if node.is_input or node.operation is None:
                continue
            for tensor in node.arguments.keras_tensors:
                found.setdefault(id(tensor), []).append(node)
    return found


def _calls(graph, operation):
    """How many nodes of the graph call `operation`."""
    return sum(node.operation is operation for nodes in graph._nodes_by_depth.values() for node in nodes)


def _functional(model):
    """The Functional graph of a model (a built Sequential's inner Functional)."""
    from tb_xai_plugin.engine.backends.native.walk import _functional as functional

    return functional(model)


def _is_model(operation):
    """Whether a graph operation is a nested Keras model with a graph of its own."""
    from tb_xai_plugin.engine.backends.native.walk import _is_model as is_model

    return is_model(operation)
