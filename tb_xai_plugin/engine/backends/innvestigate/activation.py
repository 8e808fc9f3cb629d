"""Activation maps: what a layer, or one of its channels (a "neuron"), responds to in each image.

Not an attribution of a class: the target is ignored. Tensors are built once per (model, layer,
neuron) in the model's graph and kept in model.cache.
"""

from tb_xai_plugin.engine.methods import spatial
from tb_xai_plugin.engine.registry import Method, register
from tb_xai_plugin.errors import XaiError


def _check_neuron(layer, neuron):
    """Raise XaiError unless `neuron` is None or a channel index of `layer`."""
    channels = layer["output_shape"][-1]
    if neuron is None:
        return
    if isinstance(neuron, bool) or not isinstance(neuron, int) or not 0 <= neuron < channels:
        raise XaiError(
            "neuron must be a channel index of layer %r, in [0, %d), not %r" % (layer["name"], channels, neuron)
        )


def _activation_tensor(model, layer, neuron):
    """[N, H, W] activation map at input size of `layer` (channel `neuron`, or all channels' mean)."""
    key = ("activation", layer, neuron)
    if key not in model.cache:
        import tensorflow as tf

        with model.in_graph():
            acts = model.layer_output(layer)  # [N, h, w, K]
            maps = tf.reduce_mean(acts, axis=3) if neuron is None else acts[..., neuron]  # [N, h, w]
            model.cache[key] = spatial.to_input_size(maps, model)
    return model.cache[key]


def activation(model, x, targets, params, layer, neuron, rng):
    """map = upsample(A[..., neuron]) or upsample(mean_k A[..., k]) of the layer's output A; targets unused."""
    layer = spatial.spatial_layer(model, layer, "An activation map")
    _check_neuron(layer, neuron)
    return model.run(_activation_tensor(model, layer["name"], neuron), {model.input: x})


register(
    Method(
        id="activation",
        label="Activation map",
        family="activation",
        description="What the chosen layer (mean over channels) or one channel responds to, upsampled "
        "to the image; the target class is ignored.",
        compute=activation,
        signed=True,  # layers without a ReLU (convolutions before batch norm, ...) can be negative
        takes_layer=True,
        takes_neuron=True,
        needs_logits=False,
        applies=spatial.reason_no_spatial_layer("An activation map"),
    )
)
