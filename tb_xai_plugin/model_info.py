"""Facts about a Keras model that the manifest records and the engine checks.

Shared by the summary ops (eager, in the user's training process) and the engine (in a worker),
so both compute them the same way, on Keras 2 and Keras 3 models alike. Imports nothing heavy.
"""

import hashlib

import numpy as np

# Layers that return their input unchanged at inference: training-time augmentation and noise.
INFERENCE_IDENTITY_TYPES = (
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness",
    "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization",
)
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


def describe_layers(model, prefix=""):
    """[{"name", "type", "output_shape", "conv"}] for every layer in model order; a nested model's layers follow it as "outer/inner"."""
    records = []
    for layer in model.layers:
        records.append(
            {
                "name": prefix + layer.name,
                "type": type(layer).__name__,
                "output_shape": _shape(layer),
                "conv": type(layer).__name__ in CONV_TYPES and len(_shape(layer)) == 3,
            }
        )
        if is_nested_model(layer):
            inner = describe_layers(layer, prefix + layer.name + "/")
            records.extend(record for record in inner if record["type"] != "InputLayer")
    return records


def is_nested_model(layer):
    """True if a layer of a model is itself a Functional or Sequential model (a base network)."""
    return hasattr(layer, "layers") and hasattr(layer, "get_layer")


def find_nested_layer(model, path, rename=lambda name: name):
    """The Keras layer named `path` in `model`: a layer's own name, or "outer/inner" into nested models; None if none.

    `rename` maps a recorded name to the loaded model's (a Keras 2 name read by Keras 3).
    """
    for layer in model.layers:
        if layer.name in (path, rename(path)):
            return layer
    for layer in model.layers:
        if is_nested_model(layer) and path.startswith(layer.name + "/"):
            found = find_nested_layer(layer, path[len(layer.name) + 1 :], rename)
            if found is not None:
                return found
    return None


def last_conv_layer(layers):
    """Name of the last convolutional layer (with a spatial output) in `layers` (as from describe_layers), or None."""
    convs = [layer["name"] for layer in layers if layer["conv"]]
    return convs[-1] if convs else None


def has_spatial_output(layer):
    """True if a layer record (describe_layers) has an [H, W, C] output, input layers excluded."""
    return len(layer["output_shape"]) == 3 and layer["type"] != "InputLayer"


def default_layer(layers):
    """The default layer: the last conv layer, else the last with a spatial output (a nested base net), else None.

    Layers whose output is one pixel (1x1, which only a constant map can show) come last in both choices.
    """
    convs = [layer for layer in layers if layer["conv"]]
    spatial = [layer for layer in layers if has_spatial_output(layer)]
    for group in ([c for c in convs if _wider_than_a_pixel(c)], [s for s in spatial if _wider_than_a_pixel(s)], convs, spatial):
        if group:
            return group[-1]["name"]
    return None


def _wider_than_a_pixel(layer):
    """True if a layer record's [H, W, C] output has more than one spatial position (unknown sizes count as wide)."""
    height, width = layer["output_shape"][:2]
    return (height or 2) * (width or 2) > 1


def output_activation(model):
    """The final layer's activation name: 'softmax', 'sigmoid', 'linear', ..."""
    layer = model.layers[-1]
    activation = getattr(layer, "activation", None)
    if activation is None and type(layer).__name__ == "Softmax":
        return "softmax"
    name = getattr(activation, "__name__", None) or "linear"
    return name


# Head kinds (manifest key "head"): how the output units become class probabilities and which logit a map explains.
#   softmax         K >= 2 units, softmax: p = softmax(z)
#   logits          K >= 2 units, no activation: p = softmax(z), maps explain z_k
#   binary_sigmoid  1 unit, sigmoid: 2 classes, p = [1 - sigmoid(z), sigmoid(z)], logits [-z, z]
#   binary_logit    1 unit, no activation: as binary_sigmoid (z read as a log-odds)
#   multilabel      K >= 2 units, sigmoid: p_k = sigmoid(z_k), one independent yes/no per label
HEADS = ("softmax", "logits", "binary_sigmoid", "binary_logit", "multilabel")
BINARY_HEADS = ("binary_sigmoid", "binary_logit")
SIGMOID_HEADS = BINARY_HEADS + ("multilabel",)  # probabilities are sigmoid(logit), class by class


def head_kind(activation, units):
    """The head kind of an output of `units` units with final `activation`; None for one that is no classifier."""
    if units == 1:
        return {"sigmoid": "binary_sigmoid", "linear": "binary_logit"}.get(activation)
    return {"softmax": "softmax", "linear": "logits", "sigmoid": "multilabel"}.get(activation)


def head_problem(activation, units):
    """Why an output of `units` units with final `activation` cannot be explained as a classifier, or None."""
    if head_kind(activation, units) is not None:
        return None
    if units == 1 and activation == "softmax":
        return "its output is a softmax over 1 unit, which is 1.0 whatever the input: use Dense(1, activation='sigmoid')"
    return "its output activation %r is not softmax, sigmoid or linear (no activation), so its outputs are no class scores" % activation


def manifest_head(manifest):
    """The manifest's head kind; manifests older than the "head" key: from its output activation and classes."""
    classes = int(manifest["num_classes"])
    return manifest.get("head") or (classes > 1 and head_kind(manifest.get("output_activation"), classes)) or "softmax"


def output_units(manifest):
    """The number of output units of the logged model: 1 for a binary head (2 classes), else num_classes."""
    return 1 if manifest_head(manifest) in BINARY_HEADS else int(manifest["num_classes"])


def logit_layer(model):
    """The Dense layer computing a one-unit head's logit (last layer, or the one before a final Activation), or None."""
    layers = list(model.layers)
    last = layers[-1]
    if type(last).__name__ == "Activation" and len(layers) > 1:
        last = _input_layer(last) or layers[-2]
    return last if type(last).__name__ == "Dense" else None


def _input_layer(layer):
    """The layer whose output `layer` reads (its first call), or None when that is unknown."""
    try:
        history = layer.input._keras_history
    except (AttributeError, ValueError):
        return None
    return history[0]
