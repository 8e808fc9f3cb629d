"""Keras 2 canonizers: the loaded model rebuilt, with the same function, into one every iNNvestigate method can walk.

`canonize(keras_model, session) -> Canonical(keras_model, folded, outputs)`. One walk over the functional graph
re-applies the SAME layer objects (weights shared, nothing copied) to a new input, and on the way:
- folds the leading elementwise preprocessing into `folded = (scale [C], offset [C])` (checkpoint.ModelBase
  applies it in preprocess): the chain from the input of Rescaling, Normalization and TFOpLambda arithmetic with
  constants per channel or scalar (x * c, x / c, x + c, x - c, c - x: `mobilenet_v2.preprocess_input`'s
  `x / 127.5 - 1`), composed into one x * scale + offset. It stops at the first layer that is anything else (a
  channel reversal of caffe-style preprocessing stays in the model). The rebuilt model's input is the first real
  layer's input, so maps lie on the image's own pixel grid and channels;
- flattens nested models (Functional / Sequential used as a layer: a transfer-learning base) into the outer graph,
  so iNNvestigate's graph walk sees their layers; colliding layer names get their path ("base__conv");
- drops layers that are the identity at inference (augmentation, noise, dropout, stochastic depth: IDENTITY_TYPES);
- re-makes a grouped Conv2D with groups == input channels == filters (ConvNeXt's depthwise convolution in Keras
  2.14, whose gradient TF 2.14's graph mode cannot build) as a DepthwiseConv2D with the same weights (a copy);
  other groups are left as they are.
BatchNormalization stays here (Grad-CAM and activation maps read a convolution's own output); the LRP and
Deep Taylor analyzers fold it into a copy of their own (batch_norm_fold.py).
`outputs` maps each layer's name, or path "base/layer" inside a nested model, to its output in the rebuilt
graph: a tensor, or an Affine of the raw input for a layer inside the folded chain (loading refuses those by name).
call_tensors(model, layer) and layer_types(model) read the rebuilt graph (patterns and DeepLIFT use them).
A model with several inputs, or one the walk does not know, is kept as it is (canonize returns it unchanged,
folded None), as is a model the walk would not change.
"""

import collections

import numpy as np

from tb_xai_plugin import model_info

# ConvNeXt's StochasticDepth returns its input unless training, as Dropout does.
IDENTITY_TYPES = model_info.INFERENCE_IDENTITY_TYPES + (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "StochasticDepth",
)
# TFOpLambda symbols of elementwise arithmetic with a constant: (x, c) -> (scale, offset) of x * scale + offset.
ARITHMETIC = {
    "math.multiply": lambda c, first: (c, 0.0),
    "math.truediv": lambda c, first: (1.0 / c, 0.0) if first else None,
    "math.divide": lambda c, first: (1.0 / c, 0.0) if first else None,
    "math.add": lambda c, first: (1.0, c),
    "__operators__.add": lambda c, first: (1.0, c),
    "math.subtract": lambda c, first: (1.0, -c) if first else (-1.0, c),
}

Canonical = collections.namedtuple("Canonical", "keras_model folded outputs")


class Affine:
    """A tensor that is raw_input * scale + offset (float64 arrays broadcast to the channels); not a nest."""

    def __init__(self, scale, offset):
        self.scale, self.offset = scale, offset

    def then(self, scale, offset):
        """This affine map followed by y * scale + offset."""
        return Affine(self.scale * scale, self.offset * scale + offset)


class Unchanged(Exception):
    """The walk meets a structure it does not rebuild: keep the model as it is."""


class Unfoldable(Exception):
    """The input is used with two different preprocessings: rebuild without folding."""


def canonize(keras_model, session):
    """The model rebuilt with its preprocessing folded, nested models flattened, identities dropped (module docstring)."""
    canonical = Canonical(keras_model, None, {})
    if len(keras_model.inputs) == 1 and getattr(keras_model, "_is_graph_network", False):
        for fold in (True, False):
            try:
                walk = Walk(keras_model, session, fold)
                canonical = walk.result() if walk.changed else canonical
                break
            except Unfoldable:
                continue
            except Unchanged:
                break
    unique_sublayer_names(canonical.keras_model)
    return canonical


class Walk:
    """One rebuild of a functional model's graph (see the module docstring)."""

    def __init__(self, keras_model, session, fold):
        import tensorflow as tf

        self.model, self.session, self.fold = keras_model, session, fold
        self.channels = int(keras_model.inputs[0].shape[-1])
        original = keras_model.inputs[0]
        self.input = None if fold else tf.keras.Input(shape=original.shape[1:], dtype=original.dtype, name=keras_model.input_names[0])
        self.folded = None
        self.changed = False
        self.outputs = {}
        self.layers = []  # layer objects of the rebuilt graph, in order of first use
        self.depthwise = {}  # id(grouped Conv2D) -> its DepthwiseConv2D
        start = Affine(np.ones(self.channels), np.zeros(self.channels)) if fold else self.input
        self.final = self.graph(keras_model, [start], prefix="")

    def result(self):
        """The Canonical of this walk: the rebuilt Keras model (layer names made unique), folded, outputs."""
        import tensorflow as tf

        outputs = [self.real(value) for value in self.final]
        if self.input is None:
            raise Unchanged()  # the output is an affine map of the input: nothing real to explain
        unique_names(self.layers)
        rebuilt = tf.keras.Model(self.input, outputs if len(outputs) > 1 else outputs[0], name=self.model.name)
        point_first_layers_at_input(rebuilt)
        identity = self.folded is not None and not np.any(self.folded[0] != 1) and not np.any(self.folded[1])
        return Canonical(rebuilt, None if identity else self.folded, self.outputs)

    def graph(self, network, inputs, prefix):
        """Values of the outputs of functional `network` given values of its inputs; records outputs by path."""
        values = {id(t): v for t, v in zip(network.inputs, inputs)}
        for layer, value in zip(network._input_layers, inputs):
            self.outputs.setdefault(prefix + layer.name, value)
        for depth in sorted(network._nodes_by_depth, reverse=True):
            for node in network._nodes_by_depth[depth]:
                if node.is_input:
                    continue
                outputs = self.node(node, values, prefix)
                for tensor, value in zip(_flat(node.outputs), outputs):
                    values[id(tensor)] = value
                name = prefix + node.layer.name
                if name not in self.outputs:
                    self.outputs[name] = outputs[0] if len(outputs) == 1 else outputs
        return [values[id(t)] for t in network.outputs]

    def node(self, node, values, prefix):
        """The list of output values of one node of the graph."""
        import tensorflow as tf

        layer = node.layer
        args, kwargs = tf.nest.map_structure(lambda t: values.get(id(t), t) if _is_keras_tensor(t) else t,
                                             (node.call_args, node.call_kwargs))
        if any(id(t) not in values for t in _flat(node.keras_inputs)):
            raise Unchanged()
        inputs = [values[id(t)] for t in _flat(node.keras_inputs)]
        kind = type(layer).__name__
        if kind in IDENTITY_TYPES and len(inputs) == 1:
            self.changed = True
            return inputs
        if model_info.is_nested_model(layer):
            if not getattr(layer, "_is_graph_network", False) or len(layer.inputs) != len(inputs):
                raise Unchanged()
            self.changed = True
            return self.graph(layer, inputs, prefix + layer.name + "/")
        if len(inputs) == 1 and isinstance(inputs[0], Affine):
            step = self.affine_step(node)
            if step is not None:
                self.changed = True
                return [inputs[0].then(*step)]
        args, kwargs = tf.nest.map_structure(lambda v: self.real(v) if isinstance(v, Affine) else v, (args, kwargs))
        if kind == "Conv2D" and is_depthwise(layer):
            self.changed = True
            layer = self.depthwise_of(layer)
        if layer not in self.layers:
            self.layers.append(layer)
        return _flat(layer(*args, **kwargs))

    def real(self, value):
        """A tensor of the rebuilt graph for a value; an Affine becomes the new input (which it then defines)."""
        import tensorflow as tf

        if not isinstance(value, Affine):
            return value
        scale, offset = (np.broadcast_to(a, (self.channels,)).astype(np.float64) for a in (value.scale, value.offset))
        if self.input is None:
            original = self.model.inputs[0]
            self.input = tf.keras.Input(shape=original.shape[1:], dtype=original.dtype, name=self.model.input_names[0])
            self.folded = (scale, offset)
        elif not (np.array_equal(scale, self.folded[0]) and np.array_equal(offset, self.folded[1])):
            raise Unfoldable()
        return self.input

    def affine_step(self, node):
        """(scale, offset) of the node's layer as y = x * scale + offset per channel, or None if it is not that."""
        layer = node.layer
        kind = type(layer).__name__
        if kind == "Rescaling":
            scale, offset = self.per_channel(layer.scale), self.per_channel(layer.offset)
            return None if scale is None or offset is None else (scale, offset)
        if kind == "Normalization":
            return self.normalization_step(layer)
        if kind == "TFOpLambda" and layer.symbol in ARITHMETIC:
            return self.arithmetic_step(node)
        return None

    def normalization_step(self, layer):
        """Keras 2.14 Normalization: (x - mean) / max(sqrt(var), eps), or x * max(sqrt(var), eps) + mean inverted."""
        import tensorflow as tf

        if tuple(layer.axis) not in ((-1,), (len(self.model.inputs[0].shape) - 1,)):
            return None
        mean, variance = self.session.run([layer.mean, layer.variance])
        mean, variance = self.per_channel(mean), self.per_channel(variance)
        if mean is None or variance is None:
            return None
        std = np.maximum(np.sqrt(variance.astype(np.float32)), np.float32(tf.keras.backend.epsilon())).astype(np.float64)
        return (std, mean) if getattr(layer, "invert", False) else (1.0 / std, -mean / std)

    def arithmetic_step(self, node):
        """x op c for a TFOpLambda of ARITHMETIC with one Keras tensor and one constant operand, else None."""
        operands = list(node.call_args) + [node.call_kwargs[k] for k in ("x", "y") if k in node.call_kwargs]
        if len(operands) != 2 or set(node.call_kwargs) - {"x", "y", "name"}:
            return None
        tensors = [_is_keras_tensor(v) for v in operands]
        if tensors.count(True) != 1:
            return None
        first = tensors[0]
        constant = self.per_channel(operands[1] if first else operands[0])
        return None if constant is None else ARITHMETIC[node.layer.symbol](constant, first)

    def per_channel(self, value):
        """float64 [C] or scalar of a constant broadcast over the channels, None when it varies along other axes."""
        try:
            array = np.asarray(value, np.float64)
        except (TypeError, ValueError):
            return None
        if array.ndim == 0:
            return array
        if array.size not in (1, self.channels) or any(d != 1 for d in array.shape[:-1]):
            return None
        return array.reshape(-1)

    def depthwise_of(self, layer):
        """The DepthwiseConv2D computing grouped Conv2D `layer` (kernel [h, w, 1, C] -> [h, w, C, 1]), made once."""
        import tensorflow as tf

        if id(layer) not in self.depthwise:
            weights = self.session.run(layer.weights)
            initial = [tf.keras.initializers.Constant(np.transpose(weights[0], (0, 1, 3, 2)))]
            if layer.use_bias:
                initial.append(tf.keras.initializers.Constant(weights[1]))
            self.depthwise[id(layer)] = tf.keras.layers.DepthwiseConv2D(
                layer.kernel_size, strides=layer.strides, padding=layer.padding, depth_multiplier=1,
                data_format=layer.data_format, dilation_rate=layer.dilation_rate, activation=layer.activation,
                use_bias=layer.use_bias, depthwise_initializer=initial[0],
                bias_initializer=initial[1] if layer.use_bias else "zeros", name=layer.name,
            )  # fmt: skip
        return self.depthwise[id(layer)]


def is_depthwise(conv):
    """True for a grouped Conv2D with one input and one output channel per group (groups == in == out channels)."""
    groups = getattr(conv, "groups", 1)
    return groups > 1 and groups == conv.filters and conv.kernel.shape[-2] == 1


def unique_names(layers):
    """Rename layers whose names collide (layers of different nested models) to "<scope>__<name>", in place."""
    seen = collections.Counter(layer.name for layer in layers)
    taken = set(seen)
    for layer in layers:
        if seen[layer.name] > 1:
            seen[layer.name] -= 1
            name, k = layer.name, 1
            while "%s__%d" % (name, k) in taken:
                k += 1
            layer._name = "%s__%d" % (name, k)
            taken.add(layer._name)


def point_first_layers_at_input(keras_model):
    """Make the saved model's calls of the layers the new input feeds read that input too, in place.

    iNNvestigate takes a layer for an input layer (the sequential presets' flat rule) only if every call of it
    reads an InputLayer; the saved model's call read the folded preprocessing. That model is not used after the
    rebuild, and only its calls' first argument changes.
    """
    model_input = keras_model.inputs[0]
    for layer in keras_model.layers:
        if type(layer).__name__ == "InputLayer" or node_in(keras_model, layer).input_tensors is not model_input:
            continue
        for index, node in enumerate(layer.inbound_nodes):
            if "%s_ib-%d" % (layer.name, index) not in keras_model._network_nodes and _is_keras_tensor(node.call_args[0]):
                node.call_args = (model_input,) + tuple(node.call_args[1:])


def unique_sublayer_names(keras_model):
    """Prefix the layer's name to sublayers whose names repeat ("query" of every MultiHeadAttention), in place.

    A backward graph through such a layer reaches its sublayers' own Keras nodes, so iNNvestigate's analyzer
    model lists them as layers, and Keras refuses a model with two layers of one name.
    """
    inner = [(layer, sub) for layer in keras_model.layers for sub in layer._flatten_layers(include_self=False)]
    counts = collections.Counter([layer.name for layer in keras_model.layers] + [sub.name for _, sub in inner])
    for layer, sub in inner:
        if counts[sub.name] > 1:
            sub._name = "%s_%s" % (layer.name, sub.name)


def tensor_of(value, canonical_input, folded):
    """The rebuilt graph's tensor for an outputs entry: a tensor as is; an Affine from the input (x - offset) / scale."""
    import tensorflow as tf

    if not isinstance(value, Affine):
        return value
    scale, offset = folded if folded is not None else (np.ones(1), np.zeros(1))
    if np.any(scale == 0):
        return None
    ratio = np.asarray(value.scale, np.float64) / scale
    shift = np.asarray(value.offset, np.float64) - offset * ratio
    return canonical_input * tf.constant(ratio, tf.float32) + tf.constant(shift, tf.float32)


def node_in(keras_model, layer):
    """The node of `layer`'s call inside `keras_model` (a layer re-applied by the rebuild has several)."""
    for index, node in enumerate(layer.inbound_nodes):
        if "%s_ib-%d" % (layer.name, index) in keras_model._network_nodes:
            return node
    return layer.inbound_nodes[0]


def call_tensors(keras_model, layer):
    """(input, output) tensors of `layer`'s call inside `keras_model` (not its first call, which may be the saved model's)."""
    node = node_in(keras_model, layer)
    return node.input_tensors, node.outputs


def layer_types(model):
    """Type names of the layers an iNNvestigate-backend model computes with: its rebuilt keras_model's, else the manifest's."""
    keras_model = getattr(model, "keras_model", None)
    if keras_model is None:
        return {layer["type"] for layer in model.layers}
    return {type(layer).__name__ for layer in keras_model.layers}


def _flat(structure):
    """A nest of tensors as a list."""
    import tensorflow as tf

    return tf.nest.flatten(structure)


def _is_keras_tensor(value):
    """True for a symbolic tensor of a Keras functional graph."""
    return hasattr(value, "_keras_history")
