"""Facts about a Keras model that the manifest records and the engine checks.

Shared by the summary ops (eager, in the user's training process) and the engine (in a worker),
so both compute them the same way, on Keras 2 and Keras 3 models alike. Imports nothing heavy.
"""

import hashlib

import numpy as np

CONV_TYPES = ("Conv1D", "Conv2D", "Conv3D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose")


def weights_checksum(weights):
    """sha256 over the weight arrays in order: each array's dtype, shape and C-order bytes."""
    digest = hashlib.sha256()
    for array in weights:
        array = np.ascontiguousarray(array)
        digest.update(("%s%s" % (array.dtype.str, array.shape)).encode("ascii"))
        digest.update(array.tobytes())
    return digest.hexdigest()


def _shape(layer):
    """A layer's output shape without the batch axis, as a list of ints (None kept)."""
    shape = getattr(layer, "output_shape", None)  # Keras 2 layers, and Keras 3 models
    if shape is None:
        shape = layer.output.shape if not isinstance(layer.output, (list, tuple)) else layer.output[0].shape
    if isinstance(shape, list):  # a layer with several outputs: describe the first
        shape = shape[0]
    return [None if d is None else int(d) for d in tuple(shape)[1:]]


def describe_layers(model):
    """[{"name", "type", "output_shape", "conv"}] for every layer, in model order."""
    return [
        {
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": _shape(layer),
            "conv": type(layer).__name__ in CONV_TYPES and len(_shape(layer)) == 3,
        }
        for layer in model.layers
    ]


def last_conv_layer(layers):
    """Name of the last convolutional layer (with a spatial output) in `layers` (as from describe_layers), or None."""
    convs = [layer["name"] for layer in layers if layer["conv"]]
    return convs[-1] if convs else None


def has_spatial_output(layer):
    """True if a layer record (describe_layers) has an [H, W, C] output, input layers excluded."""
    return len(layer["output_shape"]) == 3 and layer["type"] != "InputLayer"


def default_layer(layers):
    """The default layer: the last conv layer, else the last with a spatial output (a nested base net), else None."""
    spatial = [layer["name"] for layer in layers if has_spatial_output(layer)]
    return last_conv_layer(layers) or (spatial[-1] if spatial else None)


def output_activation(model):
    """The final layer's activation name: 'softmax', 'sigmoid', 'linear', ..."""
    layer = model.layers[-1]
    activation = getattr(layer, "activation", None)
    if activation is None and type(layer).__name__ == "Softmax":
        return "softmax"
    name = getattr(activation, "__name__", None) or "linear"
    return name
