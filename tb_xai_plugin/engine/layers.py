"""Layers and neurons a request names: finding and checking them in the manifest's layer list.

Shared by the layer-based methods (Grad-CAM, Guided Grad-CAM, activation maps) of every backend and by
activation_means. Pure Python: the checks read only `model.layers` (the manifest's layer list), so
`applies` works before a model is loaded.
"""

import numpy as np


from tb_xai_plugin import model_info
from tb_xai_plugin.errors import XaiError


def reason_no_spatial_layer(method_label):
    """An `applies` function: None if the model has a spatial layer, else why `method_label` cannot run."""

    def applies(model):
        if model_info.default_layer(model.layers) is None:
            return "%s needs a layer with a spatial output (a convolution); this model has none" % method_label
        return None

    return applies


def find_layer(model, name):
    """The layer record called `name` (default: model_info.default_layer), or XaiError naming the choices."""
    name = model_info.default_layer(model.layers) if name is None else name
    for layer in model.layers:
        if layer["name"] == name:
            return layer
    names = ", ".join(entry["name"] for entry in model.layers)
    raise XaiError("the model has no layer %r; its layers: %s" % (name, names))


def spatial_layer(model, name, method_label):
    """find_layer, also requiring an [H, W, C] output that `method_label` can make a map of."""
    if name is None and model_info.default_layer(model.layers) is None:
        raise XaiError(reason_no_spatial_layer(method_label)(model))
    layer = find_layer(model, name)
    if len(layer["output_shape"]) != 3:
        raise XaiError(
            "%s needs a layer with a spatial output [height, width, channels]; layer %r (%s) outputs %s"
            % (method_label, layer["name"], layer["type"], layer["output_shape"])
        )
    return layer


def check_neuron(neuron, channels, layer):
    """XaiError unless neuron is an integer channel index in [0, channels)."""
    if isinstance(neuron, bool) or not isinstance(neuron, (int, np.integer)) or not 0 <= neuron < channels:
        raise XaiError("neuron must be a channel of layer %r: an integer in [0, %d), not %r" % (layer, channels, neuron))
