"""BatchNormalization folded into its linear producer for the Keras 2 LRP and Deep Taylor analyzers (issue 17).

At inference BN(z) = k * z + c per channel, k = gamma / sqrt(var + eps), c = beta - mean * k. A BN whose
input is the linear output (no activation) of a Conv1D/2D/3D, Dense or DepthwiseConv2D read by nothing else
is merged with it into one new layer of that type: W' = W * k on the output channels, b' = b * k + c (as the
native backend's lrp/canonizers.py). The LRP rules then see one linear layer, as Zennit's canonizers and the
LRP literature do, instead of iNNvestigate's own rule for the BN. Any other BN (after an Add, a Concatenate,
an activation) stays as iNNvestigate handles it. The folded model re-applies every other layer of the logits
model (weights shared); the new layers hold new weight values, so the user's model and the rebuilt one are
untouched. Grad-CAM and activations keep the rebuilt model: a folded conv's own output is gone here.
"""

import numpy as np

from tb_xai_plugin.engine.backends.innvestigate import lrp_rules

METHODS = lrp_rules.LRP_METHODS + ("deep_taylor", "deep_taylor.bounded")
PRODUCERS = ("Conv1D", "Conv2D", "Conv3D", "Dense", "DepthwiseConv2D")


def logits_model_for(method_id, model):
    """The logits model iNNvestigate's analyzer for `method_id` explains: BN-folded for LRP / Deep Taylor."""
    if method_id not in METHODS:
        return model.logits_model
    return model.cache.get_or_build(("bn-folded-logits",), lambda: folded_logits(model))


def folded_logits(model):
    """model.logits_model with every foldable BN merged into its producer; the logits model itself if none is."""
    pairs = foldable_pairs(model.logits_model)
    if not pairs:
        return model.logits_model
    variables = [v for producer, bn in pairs for v in producer.layer.weights + bn.layer.weights]
    values = dict(zip(map(id, variables), model.session.run(variables)))  # one run: MobileNetV2 has 52 BNs
    with model.building() as fetches:
        merges = {id(bn): merged_layer(producer, bn, values, i) for i, (producer, bn) in enumerate(pairs)}
        rebuilt = rebuild(model.logits_model, merges)
        fetches.extend(rebuilt.outputs)
    return rebuilt


def foldable_pairs(keras_model):
    """[(producer node, BN node)] of keras_model: BN over the last axis of a linear producer's output read only by it."""
    if not getattr(keras_model, "_is_graph_network", False):
        return []
    readers = {}
    for node in graph_nodes(keras_model):
        for tensor in _flat(node.keras_inputs):
            readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    for tensor in keras_model.outputs:
        readers[id(tensor)] = readers.get(id(tensor), 0) + 1
    pairs = []
    for node in graph_nodes(keras_model):
        inputs = _flat(node.keras_inputs)
        if type(node.layer).__name__ != "BatchNormalization" or len(inputs) != 1 or not last_axis(node.layer, inputs[0]):
            continue
        producer = producing_node(inputs[0])
        if producer is not None and linear_producer(producer.layer) and readers[id(inputs[0])] == 1:
            pairs.append((producer, node))
    return pairs


def graph_nodes(keras_model):
    """The layer calls of a functional model, inputs first (no InputLayer nodes)."""
    depths = sorted(keras_model._nodes_by_depth, reverse=True)
    return [node for depth in depths for node in keras_model._nodes_by_depth[depth] if not node.is_input]


def producing_node(tensor):
    """The node that made `tensor`."""
    history = tensor._keras_history
    return history.layer._inbound_nodes[history.node_index]


def linear_producer(layer):
    """Whether `layer` is a channels-last Conv / Dense / DepthwiseConv2D without activation."""
    return (
        type(layer).__name__ in PRODUCERS
        and getattr(layer, "data_format", "channels_last") == "channels_last"
        and lrp_rules.activation_name(layer) == "linear"
    )


def last_axis(bn, tensor):
    """Whether batch norm `bn` normalizes the last axis of its input `tensor`."""
    axis = list(np.atleast_1d(bn.axis))
    return len(axis) == 1 and axis[0] in (-1, len(tensor.shape) - 1)


def batch_norm_affine(bn, values):
    """float64 (k, c) of BN(z) = k z + c, from values (id(variable) -> value): k = gamma / sqrt(var + eps), c = beta - mean k."""
    mean, variance = (np.asarray(values[id(v)], np.float64) for v in (bn.moving_mean, bn.moving_variance))
    gamma = np.asarray(values[id(bn.gamma)], np.float64) if bn.scale else 1.0
    beta = np.asarray(values[id(bn.beta)], np.float64) if bn.center else 0.0
    k = gamma / np.sqrt(variance + bn.epsilon)
    return k, beta - mean * k


def folded_weights(layer, bn, values):
    """float32 (kernel', bias') of linear `layer` followed by `bn`: W' = W * k on the output channels, b' = b * k + c."""
    k, c = batch_norm_affine(bn, values)
    kernel = np.asarray(values[id(layer.weights[0])], np.float64)
    bias = np.asarray(values[id(layer.bias)], np.float64) if layer.use_bias else 0.0
    if type(layer).__name__ == "DepthwiseConv2D":
        kernel = kernel * k.reshape(kernel.shape[-2:])  # output channel c * multiplier + m
    else:
        kernel = kernel * k
    return kernel.astype(np.float32), np.broadcast_to(bias * k + c, k.shape).astype(np.float32)


def merged_layer(producer, bn, values, index):
    """(producer node, a new layer of the producer's type computing bn(producer(x)), named '<producer>_<bn>_folded<index>')."""
    import tensorflow as tf

    layer = producer.layer
    kernel, bias = folded_weights(layer, bn.layer, values)
    kernel_key = "depthwise_initializer" if type(layer).__name__ == "DepthwiseConv2D" else "kernel_initializer"
    config = dict(layer.get_config(), name="%s_%s_folded%d" % (layer.name, bn.layer.name, index), use_bias=True)
    config.update({kernel_key: tf.keras.initializers.Constant(kernel), "bias_initializer": tf.keras.initializers.Constant(bias)})
    return producer, type(layer).from_config(config)


def rebuild(keras_model, merges):
    """keras_model's graph re-applied on its own input, each BN node of `merges` (id -> (producer, layer)) one layer."""
    import tensorflow as tf

    values = {id(t): t for t in keras_model.inputs}
    skipped = {id(producer) for producer, _ in merges.values()}
    for node in graph_nodes(keras_model):
        if id(node) in skipped:
            continue
        if id(node) in merges:
            producer, layer = merges[id(node)]
            outputs = layer(values[id(_flat(producer.keras_inputs)[0])])
        else:
            args, kwargs = tf.nest.map_structure(lambda t: values.get(id(t), t) if hasattr(t, "_keras_history") else t,
                                                 (node.call_args, node.call_kwargs))
            outputs = node.layer(*args, **kwargs)
        for tensor, value in zip(_flat(node.outputs), _flat(outputs)):
            values[id(tensor)] = value
    outputs = [values[id(t)] for t in keras_model.outputs]
    return tf.keras.Model(keras_model.inputs, outputs if len(outputs) > 1 else outputs[0], name=keras_model.name + "_bn_folded")


def _flat(structure):
    """A nest of tensors as a list."""
    import tensorflow as tf

    return tf.nest.flatten(structure)
