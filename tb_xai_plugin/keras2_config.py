"""Keras 2 `.h5` models in Keras 3: the model config translated to one Keras 3's legacy loader builds.

    translate(config) -> config     a Keras 2 model config (dict) rewritten for Keras 3 (pure Python)
    load_h5(path, allow_unsafe)     the model of a `.h5` file built by Keras 3 (translated if Keras 2 wrote it)

Keras 3.15's legacy `.h5` loader refuses configs the Keras 2 stack writes. `translate` rewrites each,
computing the same function with the same weights (nothing is executed; every layer at every depth):
- DepthwiseConv1D/2D, SeparableConv1D/2D: Keras 2 records `groups` and unused `kernel_*` keys, which
  Keras 3 rejects; they are dropped (a `groups` other than 1 is refused).
- A nested Functional model (e.g. a Keras application used as a base): Keras 2 numbers its first call
  node 1 (node 0 is its own graph), Keras 3 node 0; references to it are shifted down by one.
- Layer names holding "/" (DenseNet's "conv1/conv"), which Keras 3 refuses: "/" becomes "_".
- TFOpLambda layers of scalar or per-channel arithmetic (`x / 127.5 - 1`, `tf.nn.bias_add`), which
  Keras 3 has no class for: each becomes a Rescaling layer, x * scale + offset.
Anything else Keras 3 has no class for (e.g. SlicingOpLambda, the channel flip of the "caffe"
preprocessing of ResNet50 / VGG) raises XaiError naming the layer.
The safety check (tb_xai_plugin.safety) runs on the original config first; the weights are read from
the same file by Keras 3's legacy weight loader (by position, so renamed layers keep theirs).
"""

import json
import os

from tb_xai_plugin import safety
from tb_xai_plugin.errors import XaiError

# Keras 2 keys of these classes that Keras 3 rejects and whose values Keras 2 never used.
UNUSED_KEYS = {
    name: ("groups", "kernel_initializer", "kernel_regularizer", "kernel_constraint")
    for name in ("DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D")
}
# TFOpLambda functions that are x * scale + offset for a constant y: name -> (scale, offset) of y.
ARITHMETIC = {
    "math.truediv": lambda y: (_map(lambda v: 1.0 / v, y), 0.0),
    "math.divide": lambda y: (_map(lambda v: 1.0 / v, y), 0.0),
    "math.multiply": lambda y: (y, 0.0),
    "math.add": lambda y: (1.0, y),
    "__operators__.add": lambda y: (1.0, y),
    "math.subtract": lambda y: (1.0, _map(lambda v: -v, y)),
}
TF_OP_CLASSES = ("TFOpLambda", "SlicingOpLambda")


def translate(config):
    """A copy of the Keras 2 model config `config` that Keras 3's legacy loader builds into the same function."""
    return _translate_model(json.loads(json.dumps(config)))


def _translate_model(record):
    """The model record with its layers (and nested models' layers) translated, in place."""
    config = record.get("config")
    if record.get("class_name") not in safety.MODEL_CLASSES or not isinstance(config, dict):
        return record
    layers = config.get("layers") or []
    nested = {layer.get("name", layer["config"].get("name")) for layer in layers if _graph_model(layer)}
    for layer in layers:
        _translate_layer(layer, nested)
    for key in ("input_layers", "output_layers"):
        if isinstance(config.get(key), list):
            config[key] = _shift_refs(config[key], nested)
    return record


def _graph_model(layer):
    """Whether Keras 2 numbered this layer's first call node 1: a model built from an InputLayer."""
    if layer.get("class_name") not in safety.MODEL_CLASSES:
        return False
    inner = layer.get("config", {}).get("layers") or [{}]
    return layer["class_name"] != "Sequential" or inner[0].get("class_name") == "InputLayer"


def _translate_layer(layer, nested):
    """Translate one layer record of a model in place (its class, config keys, name and inbound references)."""
    config = layer["config"]
    name = str(config.get("name", layer.get("name")))
    for key in UNUSED_KEYS.get(layer["class_name"], ()):
        if key == "groups" and config.get(key, 1) != 1:
            what = (name, layer["class_name"], config[key])
            raise XaiError("layer %r (%s) has groups=%s, which Keras 3 cannot express" % what)
        config.pop(key, None)
    if layer["class_name"] in TF_OP_CLASSES:
        _to_rescaling(layer, name)
    if "inbound_nodes" in layer:
        layer["inbound_nodes"] = _shift_refs(layer["inbound_nodes"], nested)
    for key in safety.NESTED_LAYER_KEYS:
        if isinstance(config.get(key), dict):
            _translate_layer(config[key], set())
    _translate_model(layer)
    _rename(layer)


def _to_rescaling(layer, name):
    """Turn a TFOpLambda record of constant arithmetic into a Rescaling record; XaiError for any other."""
    function = layer["config"].get("function")
    nodes = layer.get("inbound_nodes") or []
    ref = nodes[0] if len(nodes) == 1 and nodes[0] and isinstance(nodes[0][0], str) else None
    kwargs = ref[3] if ref is not None and len(ref) > 3 and isinstance(ref[3], dict) else None
    scale_offset = _constant_arithmetic(function, kwargs) if kwargs is not None else None
    if scale_offset is None:
        raise XaiError(
            "layer %r (%s calling tf.%s) has no Keras 3 equivalent: Keras 3 cannot load this Keras 2 model; "
            "explain it in the Keras 2 stack (.venv-innvestigate)" % (name, layer["class_name"], function)
        )
    scale, offset = scale_offset
    layer["class_name"] = "Rescaling"
    layer["config"] = {"name": name, "trainable": False, "dtype": layer["config"].get("dtype", "float32"),
                       "scale": scale, "offset": offset}  # fmt: skip
    layer["inbound_nodes"] = [[[ref[0], ref[1], ref[2], {}]]]


def _constant_arithmetic(function, kwargs):
    """(scale, offset) with op(x) == x * scale + offset for a TFOpLambda call's kwargs; None if not constant."""
    channels_last = kwargs.get("data_format") in (None, "NHWC")
    if function == "nn.bias_add" and channels_last and _number_or_list(kwargs.get("bias")):
        return 1.0, kwargs["bias"]
    extra = set(kwargs) - {"y", "name"}
    if function in ARITHMETIC and not extra and _number_or_list(kwargs.get("y")):
        return ARITHMETIC[function](kwargs["y"])
    return None


def _number_or_list(value):
    """Whether value is a number or a flat list of numbers (a per-channel constant)."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    return number(value) or (isinstance(value, list) and bool(value) and all(map(number, value)))


def _map(fn, value):
    """fn applied to a number or to each number of a list."""
    return [fn(v) for v in value] if isinstance(value, list) else fn(value)


def _shift_refs(value, nested):
    """Inbound / output references [name, node, tensor, ...] with node - 1 for calls of `nested`, "/" renamed."""
    if isinstance(value, list) and len(value) >= 3 and isinstance(value[0], str) and isinstance(value[1], int):
        node = value[1] - 1 if value[0] in nested and value[1] > 0 else value[1]
        return [keras3_name(value[0]), node] + value[2:]
    if isinstance(value, list):
        return [_shift_refs(v, nested) for v in value]
    return value


def _rename(layer):
    """Replace "/" in the layer record's name (Keras 3 refuses it)."""
    if isinstance(layer.get("config", {}).get("name"), str):
        layer["config"]["name"] = keras3_name(layer["config"]["name"])
    if isinstance(layer.get("name"), str):
        layer["name"] = keras3_name(layer["name"])


def keras3_name(name):
    """A Keras 2 layer name as Keras 3 accepts it: "/" (DenseNet's "conv1/conv") replaced by "_"."""
    return name.replace("/", "_")


def written_by_keras2(h5file):
    """Whether the open `.h5` file was written by Keras 2 (its keras_version attribute; absent: Keras 2)."""
    version = h5file.attrs.get("keras_version", "2")
    return (version.decode() if isinstance(version, bytes) else str(version)).startswith("2")


def load_h5(path, allow_unsafe=False):
    """The model in the `.h5` file at `path`, built by Keras 3 from the translated config, weights from the file."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format, saving_options, saving_utils
    from keras.src.saving import serialization_lib

    original = safety.read_config(path, "h5")
    safety.check_config(original, allow_unsafe)
    with h5py.File(path, "r") as f:
        config = translate(original) if written_by_keras2(f) else original
        weights = f["model_weights"] if "model_weights" in f else None
        if weights is None:
            raise XaiError("checkpoint %s holds no model weights" % os.path.basename(path))
        legacy = saving_options.keras_option_scope(use_legacy_config=True)
        with legacy, serialization_lib.SafeModeScope(not allow_unsafe):  # as keras.saving.load_model does for .h5
            model = saving_utils.model_from_config(config)
            legacy_h5_format.load_weights_from_hdf5_group(weights, model)
    return model
