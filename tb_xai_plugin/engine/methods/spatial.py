"""Layers with a spatial output: finding and checking them, their tensors, maps resized to the input.

Shared by the layer-based methods (Grad-CAM, Guided Grad-CAM, activation maps). The checks read
only `model.layers` (the manifest's layer list), so `applies` works before a model is loaded.
"""

from tb_xai_plugin import model_info
from tb_xai_plugin.errors import XaiError

INPUT_LAYER_TYPES = ("InputLayer",)


def is_spatial(layer):
    """True if a layer record (model_info.describe_layers) has an [H, W, C] output, inputs excluded."""
    return len(layer["output_shape"]) == 3 and layer["type"] not in INPUT_LAYER_TYPES


def default_layer(layers):
    """The last convolutional layer, else the last layer with a spatial output, else None."""
    spatial = [layer["name"] for layer in layers if is_spatial(layer)]
    return model_info.last_conv_layer(layers) or (spatial[-1] if spatial else None)


def reason_no_spatial_layer(method_label):
    """An `applies` function: None if the model has a spatial layer, else why `method_label` cannot run."""

    def applies(model):
        if default_layer(model.layers) is None:
            return "%s needs a layer with a spatial output (a convolution); this model has none" % method_label
        return None

    return applies


def find_layer(model, name):
    """The layer record called `name` (default: default_layer), or XaiError naming the choices."""
    name = default_layer(model.layers) if name is None else name
    for layer in model.layers:
        if layer["name"] == name:
            return layer
    names = ", ".join(entry["name"] for entry in model.layers)
    raise XaiError("the model has no layer %r; its layers: %s" % (name, names))


def spatial_layer(model, name, method_label):
    """find_layer, also requiring an [H, W, C] output that `method_label` can make a map of."""
    if name is None and default_layer(model.layers) is None:
        raise XaiError(reason_no_spatial_layer(method_label)(model))
    layer = find_layer(model, name)
    if len(layer["output_shape"]) != 3:
        raise XaiError(
            "%s needs a layer with a spatial output [height, width, channels]; layer %r (%s) outputs %s"
            % (method_label, layer["name"], layer["type"], layer["output_shape"])
        )
    return layer


def _ancestor_ops(model):
    """Names of every op the logits depend on, found once per model by walking inputs back."""
    key = ("spatial", "ancestor_ops")
    if key not in model.cache:
        seen, stack = set(), [t.op for t in model.logits_model.outputs]
        while stack:
            op = stack.pop()
            if op.name not in seen:
                seen.add(op.name)
                stack.extend(t.op for t in op.inputs)
        model.cache[key] = frozenset(seen)
    return model.cache[key]


def layer_output(model, name):
    """The output tensor of layer `name` on the path to the logits (nested models: their outer call)."""
    layer = model.keras_model.get_layer(name)
    ancestors = _ancestor_ops(model)
    candidates = [layer.get_output_at(k) for k in range(len(layer.inbound_nodes))] + [layer.output]
    for tensor in candidates:
        if tensor.op.name in ancestors:
            return tensor
    raise XaiError("layer %r does not feed the model's output" % name)


def to_input_size(maps, model):
    """Graph op: [N, h, w] maps resized bilinearly (half-pixel centres) to [N, H, W] of the input."""
    import tensorflow as tf

    height, width = model.input_shape[:2]
    return tf.image.resize(maps[..., None], (height, width), method="bilinear")[..., 0]
