"""The layer-by-layer walk of a Keras 3 model: one flat list of steps, nested models flattened.

Used by the native backend's LRP, Deep Taylor, DeepLIFT and PatternNet. Stable API:

    walk = Walk(model)        model: a Functional or Sequential Keras 3 model; a nested Functional or
                              Sequential model (a base network) is flattened into the outer graph
    walk.steps                [Step], topological order: a step comes after every step it reads from
    walk.inputs               tuple of value keys of the model's inputs (ints)
    walk.outputs              tuple of value keys of the model's outputs
    walk.forward(*xs)         {key: tensor}: every value of the graph for the inputs xs (same order as
                              model.inputs); eager, differentiable (run it under a GradientTape)
    walk.consumers(key)       the steps that read value `key` (fan-out: relevance sums over them)
    walk.producer(key)        the step that wrote value `key`, None for a model input
    walk.replace(step, new)   a new Walk with `step` replaced by the steps `new` (canonizers)

A Step is one layer call, or one half of a layer with a fused activation:

    step.layer       the Keras layer (for both halves of a split layer: the original layer)
    step.name        the layer's name; a split layer's halves are "<name>" and "<name>/activation"
    step.kind        "linear":     Dense, Conv1D/2D/3D, DepthwiseConv1D/2D, SeparableConv1D/2D without
                                   their activation (a Conv2D(activation="relu") gives a "linear" step
                                   and an "activation" step)
                     "activation": an elementwise activation: a split-off fused one, an Activation
                                   layer, a ReLU layer
                     "layer":      any other layer, re-called exactly as the model calls it
    step.inputs      tuple of value keys it reads;  step.outputs: tuple of value keys it writes
    step(*tensors)   -> tuple of output tensors, from the tensors of step.inputs (in that order)
  "linear" steps also have
    step.kernels     tuple of kernel tensors (Dense/Conv: (kernel,); SeparableConv: (depthwise, pointwise))
    step.bias        the bias tensor, or None
    step.linear(x, kernels, bias)   the layer's linear map with other weights (bias may be None):
                                    z = conv(x, kernels) + bias; the rules call it with modified weights
    step.with_weights(kernels, bias)   a copy of the step with other weights (BatchNorm folding)
    (a canonizer may also make a BatchNormalization a "linear" step: kernels (scale,), z = x * scale + bias)
  "activation" steps also have
    step.fn          the elementwise function
    step.fused       True for an activation split off a linear layer or an Activation layer, False for
                     a layer class of its own (ReLU); a split-off one has a linear class as step.layer
The walk never changes the model: steps read its weights and re-call its layers.
"""

import dataclasses
from typing import Callable, Optional

LINEAR_CLASSES = ("Dense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D")


@dataclasses.dataclass(frozen=True, eq=False)
class Step:
    """One layer call (or half of a split layer): what it reads, what it writes, how to compute it."""

    layer: object
    name: str
    kind: str
    inputs: tuple
    outputs: tuple
    call: Callable
    kernels: tuple = ()
    bias: Optional[object] = None
    fn: Optional[Callable] = None
    fused: bool = False

    def __call__(self, *tensors):
        """The step's outputs (a tuple) from its input tensors."""
        if self.kind == "linear":
            return (self.linear(tensors[0], self.kernels, self.bias),)
        if self.kind == "activation":
            return (self.fn(tensors[0]),)
        return tuple(self.call(*tensors))

    def linear(self, x, kernels, bias):
        """The layer's linear map with `kernels` and `bias` (None: no bias): z = op(x, kernels) + bias."""
        return linear_map(self.layer, x, kernels, bias)

    def with_weights(self, kernels, bias):
        """This linear step with other weights."""
        return dataclasses.replace(self, kernels=tuple(kernels), bias=bias)


class Walk:
    """A Keras 3 model as a flat list of steps in topological order (see the module docstring)."""

    def __init__(self, model, steps=None, inputs=None, outputs=None):
        self.model = model
        if steps is None:
            builder = _Builder()
            inputs, outputs = builder.add_model(model, None)
            steps = builder.steps
        self.steps = list(steps)
        self.inputs = tuple(inputs)
        self.outputs = tuple(outputs)
        self._producers = {k: s for s in self.steps for k in s.outputs}

    def forward(self, *xs):
        """{key: tensor} for every value of the graph, computed from the model inputs xs."""
        values = dict(zip(self.inputs, xs))
        for step in self.steps:
            values.update(zip(step.outputs, step(*[values[k] for k in step.inputs])))
        return values

    def consumers(self, key):
        """The steps that read value `key`."""
        return [s for s in self.steps if key in s.inputs]

    def producer(self, key):
        """The step that writes value `key`, or None for a model input."""
        return self._producers.get(key)

    def replace(self, step, new_steps):
        """A new Walk with `step` replaced by `new_steps` (in that order)."""
        at = self.steps.index(step)
        return Walk(self.model, self.steps[:at] + list(new_steps) + self.steps[at + 1:], self.inputs, self.outputs)


class _Builder:
    """Collects steps from a model's nodes, flattening nested models; values keyed by ints."""

    def __init__(self):
        self.steps = []
        self.keys = {}  # id(KerasTensor) -> value key
        self._next = 0

    def new_key(self):
        """A fresh value key."""
        self._next += 1
        return self._next

    def key(self, tensor):
        """The value key of a KerasTensor already seen."""
        return self.keys[id(tensor)]

    def add_model(self, model, input_keys):
        """Add the steps of `model` reading `input_keys` (None: new keys); return (input keys, output keys)."""
        graph = _functional(model)
        if input_keys is None:
            input_keys = [self.new_key() for _ in graph.inputs]
        for tensor, key in zip(graph.inputs, input_keys):
            self.keys[id(tensor)] = key
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                if node.operation is not None and not node.is_input:
                    self.add_node(node)
        return tuple(input_keys), tuple(self.key(t) for t in graph.outputs)

    def add_node(self, node):
        """Add the step(s) of one node: a nested model's steps, a split layer's two, or one."""
        layer = node.operation
        in_keys = tuple(self.key(t) for t in node.arguments.keras_tensors)
        if _is_model(layer):
            _, out_keys = self.add_model(layer, list(in_keys))
            for tensor, key in zip(node.outputs, out_keys):
                self.keys[id(tensor)] = key
            return
        out_keys = tuple(self.new_key() for _ in node.outputs)
        for tensor, key in zip(node.outputs, out_keys):
            self.keys[id(tensor)] = key
        kind = _kind(layer)
        if kind == "linear":
            self.add_linear(layer, in_keys, out_keys)
        elif kind == "activation":
            fn = layer.activation if type(layer).__name__ == "Activation" else layer
            self.steps.append(Step(layer, layer.name, "activation", in_keys, out_keys, fn, fn=fn, fused=fn is not layer))
        else:
            self.steps.append(Step(layer, layer.name, "layer", in_keys, out_keys, _recall(node)))

    def add_linear(self, layer, in_keys, out_keys):
        """A linear layer's step, followed by its fused activation's step unless that is linear."""
        kernels = _kernels(layer)
        bias = layer.bias if getattr(layer, "use_bias", False) else None
        activation = getattr(layer, "activation", None)
        if activation is None or getattr(activation, "__name__", "") == "linear":
            self.steps.append(Step(layer, layer.name, "linear", in_keys, out_keys, None, kernels, bias))
            return
        middle = (self.new_key(),)
        self.steps.append(Step(layer, layer.name, "linear", in_keys, middle, None, kernels, bias))
        self.steps.append(Step(layer, layer.name + "/activation", "activation", middle, out_keys, activation, fn=activation, fused=True))


def _functional(model):
    """The Functional graph of a model (a built Sequential's inner Functional)."""
    if type(model).__name__ == "Sequential":
        if getattr(model, "_functional", None) is None:
            raise ValueError("Sequential model %r is not built (no input shape)" % model.name)
        return model._functional
    return model


def _is_model(layer):
    """Whether `layer` is a nested Keras model with a graph of its own."""
    import keras

    return isinstance(layer, keras.Model) and hasattr(_functional(layer), "_nodes_by_depth")


def _kind(layer):
    """'linear', 'activation' or 'layer' (see Step.kind)."""
    name = type(layer).__name__
    if name in LINEAR_CLASSES:
        return "linear"
    if name in ("Activation", "ReLU"):
        return "activation"
    return "layer"


def _kernels(layer):
    """A linear layer's kernels: (depthwise, pointwise) for separable convolutions, else (kernel,)."""
    if type(layer).__name__.startswith("SeparableConv"):
        return (layer.depthwise_kernel, layer.pointwise_kernel)
    return (layer.kernel,)


def _recall(node):
    """A function re-calling the node's layer with the node's own non-tensor arguments."""
    def call(*tensors):
        import keras

        args, kwargs = node.arguments.fill_in({id(t): v for t, v in zip(node.arguments.keras_tensors, tensors)})
        if "training" in getattr(node.operation, "_call_context_args", ()):
            kwargs["training"] = False  # outside a model's call, augmentation layers default to training=True
        return keras.tree.flatten(node.operation(*args, **kwargs))

    return call


def linear_map(layer, x, kernels, bias):
    """z = op(x, kernels) + bias for a layer of LINEAR_CLASSES (bias None: none), or x * kernel + bias for a BatchNormalization."""
    from keras import ops

    name = type(layer).__name__
    if name == "BatchNormalization":
        shape = [1] * len(x.shape)
        shape[layer.axis] = -1
        z = x * ops.reshape(kernels[0], shape)
        return z if bias is None else z + ops.reshape(bias, shape)
    if name == "Dense":
        z = ops.matmul(x, kernels[0])
    elif name.startswith("SeparableConv"):
        z = ops.separable_conv(x, kernels[0], kernels[1], **_conv_args(layer))
    elif name.startswith("DepthwiseConv"):
        z = ops.depthwise_conv(x, kernels[0], **_conv_args(layer))
    else:
        z = ops.conv(x, kernels[0], **_conv_args(layer))
    if bias is None:
        return z
    if name != "Dense" and getattr(layer, "data_format", "channels_last") == "channels_first":
        bias = ops.reshape(bias, (1, -1) + (1,) * (len(z.shape) - 2))
    return z + bias


def _conv_args(layer):
    """The convolution's keyword arguments, as the layer passes them."""
    return dict(strides=layer.strides, padding=layer.padding, dilation_rate=layer.dilation_rate, data_format=layer.data_format)
