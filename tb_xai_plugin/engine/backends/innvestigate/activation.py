"""Activation maps: what a layer, or one of its channels (a "neuron"), responds to in each image.

Not an attribution of a class: the target is ignored. Tensors are built once per (model, layer,
neuron) in the model's graph and kept in model.cache.
"""

from tb_xai_plugin.engine import layers
from tb_xai_plugin.engine.backends.innvestigate import implements
from tb_xai_plugin.engine.backends.innvestigate.spatial import to_input_size


def _activation_tensor(model, layer, neuron):
    """[N, H, W] activation map at input size of `layer` (channel `neuron`, or all channels' mean)."""
    key = ("activation", layer, neuron)
    if key not in model.cache:
        import tensorflow as tf

        with model.in_graph():
            acts = model.layer_output(layer)  # [N, h, w, K]
            maps = tf.reduce_mean(acts, axis=3) if neuron is None else acts[..., neuron]  # [N, h, w]
            model.cache[key] = to_input_size(maps, model)
    return model.cache[key]


@implements("activation")
def activation(model, x, targets, params, layer, neuron, rng):
    """map = upsample(A[..., neuron]) or upsample(mean_k A[..., k]) of the layer's output A; targets unused."""
    layer = layers.spatial_layer(model, layer, "An activation map")
    if neuron is not None:
        layers.check_neuron(neuron, layer["output_shape"][-1], layer["name"])
    return model.run(_activation_tensor(model, layer["name"], neuron), {model.input: x})
