"""The plugin's name and its versioned on-disk contract.

Layout of one run (the files are the source of truth; the event file only indexes them):

    <run>/plugins/xai/checkpoints/step-000000042.keras  the model (weights included): .keras from
                                                        Keras 3, .h5 (or a SavedModel folder) from Keras 2
    <run>/plugins/xai/checkpoints/step-000000042.json   its manifest (see CHECKPOINT_KEYS)
    <run>/plugins/xai/samples/<name>.npz                images [N,H,W,C], labels [N] (-1: none), ids [N];
                                                        np.savez (members stored uncompressed: readers
                                                        read the images by rows at their byte offset)
    <run>/plugins/xai/samples/<name>.json               its manifest (see SAMPLES_KEYS)

A manifest is written after its data file, both under a temporary name renamed into place,
so a reader that finds a manifest finds a complete data file.
Pure Python: imported by TensorBoard's plugin loader, so nothing heavy here.
"""

import json
import re

from tb_xai_plugin.errors import XaiError

PLUGIN_NAME = "xai"
FORMAT_VERSION = 1

PLUGIN_DIR = ("plugins", PLUGIN_NAME)
CHECKPOINTS_DIR = "checkpoints"
SAMPLES_DIR = "samples"

CHECKPOINT_TAG = "xai/checkpoint"
SAMPLES_TAG_PREFIX = "xai/samples/"

KIND_CHECKPOINT = "checkpoint"
KIND_SAMPLES = "samples"

# Keys every checkpoint manifest has.
CHECKPOINT_KEYS = (
    "format_version",  # FORMAT_VERSION at write time
    "kind",  # "checkpoint"
    "step",  # int, the training step
    "file",  # data file name, inside the checkpoints folder
    "format",  # see CHECKPOINT_FORMATS
    "model_name",  # model.name
    "input_shape",  # [H, W, C]
    "num_classes",  # int: the classes shown (2 for a binary head's 1 output unit)
    "class_names",  # list of str, len num_classes
    "preprocessing",  # see PREPROCESSING_TYPES
    "output_activation",  # "softmax", "sigmoid" or "linear": the final layer's activation
    "layers",  # [{"name", "type", "output_shape", "conv"}], in model order
    "weights_sha256",  # sha256 over the model's weight arrays, see model_info.weights_checksum
    "file_sha256",  # sha256 of the data file's bytes (of a SavedModel's saved_model.pb)
    "versions",  # {"tensorflow", "keras", "keras_backend", "tb_xai_plugin", "python"}: "keras" is the version of
    # the Keras that wrote the checkpoint (readers take a manifest without it as Keras 2), "keras_backend" the
    # backend it trained on (tensorflow, jax, torch; absent before tb-xai recorded it)
    "wall_time",  # float, seconds since epoch
)
# Optional checkpoint key: "head", the head kind (model_info.HEADS: softmax, logits, binary_sigmoid, binary_logit,
# multilabel); a binary head has 1 output unit and num_classes 2 (class 1 is sigmoid(z), class 0 its complement).
# Manifests without it (before tb-xai recorded it) read as model_info.manifest_head says.
# Optional checkpoint key: "metric", {"name", "value", "mode": "min" | "max"} given to summary.checkpoint(metric=...)
# or recorded by the callback (its `monitor`): retention always keeps the run's best checkpoint by it.
# Optional checkpoint key: "unsafe_layers", the paths of the layers holding code (e.g. ["td/lam"]) of a
# model logged with allow_unsafe=True (see safety); the plugin loads it only with --xai_allow_unsafe_models.

# Checkpoint format -> data file suffix: "keras" (a Keras 3 .keras zip), "h5" and "savedmodel"
# (a folder) from Keras 2.
CHECKPOINT_FORMATS = {"keras": ".keras", "h5": ".h5", "savedmodel": ""}

# Keys every sample-set manifest has.
SAMPLES_KEYS = (
    "format_version",
    "kind",  # "samples"
    "name",  # matches NAME_PATTERN
    "step",
    "file",
    "count",  # N
    "image_shape",  # [H, W, C]
    "dtype",  # "uint8" or "float32"
    "value_range",  # [min, max] of the stored images, for display
    "has_labels",  # bool
    "class_names",  # list of str or null
    "sha256",  # sha256 of the data file's bytes
    "wall_time",
)

# How the engine turns a stored image x into the model's input.
#   {"type": "none"}                               model(x)
#   {"type": "scale", "scale": a, "offset": b}    model(a * x + b)
#   {"type": "keras_app", "module": "vgg16"}      model(tf.keras.applications.<module>.preprocess_input(x))
PREPROCESSING_TYPES = ("none", "scale", "keras_app")

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def checkpoint_basename(step):
    """File stem of the checkpoint at `step`: 'step-%09d'."""
    return "step-%09d" % int(step)


def checkpoint_filename(step, fmt):
    """Name of the checkpoint's data file (or folder) at `step` in format `fmt`; XaiError for an unknown format."""
    if fmt not in CHECKPOINT_FORMATS:
        raise XaiError("unknown checkpoint format %r (known: %s)" % (fmt, ", ".join(CHECKPOINT_FORMATS)))
    return checkpoint_basename(step) + CHECKPOINT_FORMATS[fmt]


def check_name(name):
    """Return `name` if it is a valid sample-set name, else raise XaiError."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise XaiError(
            "invalid name %r: use 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"
            % (name,)
        )
    return name


def index_content(kind):
    """The plugin_data content of an index summary: small JSON naming the format version and kind."""
    return json.dumps({"version": FORMAT_VERSION, "kind": kind}).encode("utf-8")


def parse_index_content(content):
    """Parse plugin_data content; raise XaiError for a version this code cannot read."""
    try:
        parsed = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise XaiError("unreadable xai plugin metadata: %s" % e) from e
    if not isinstance(parsed, dict) or parsed.get("version", 0) > FORMAT_VERSION:
        raise XaiError("xai data written by a newer tb-xai (format %r)" % (parsed,))
    return parsed


def parse_manifest(text, kind):
    """Parse a manifest's JSON text, checking its kind, version and keys; raise XaiError otherwise."""
    try:
        manifest = json.loads(text)
    except ValueError as e:
        raise XaiError("unreadable manifest: %s" % e) from e
    keys = CHECKPOINT_KEYS if kind == KIND_CHECKPOINT else SAMPLES_KEYS
    if not isinstance(manifest, dict) or manifest.get("kind") != kind:
        raise XaiError("not a %s manifest" % kind)
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise XaiError("manifest written by a newer tb-xai (format %r)" % manifest.get("format_version"))
    missing = [k for k in keys if k not in manifest]
    if missing:
        raise XaiError("manifest lacks %s" % ", ".join(missing))
    return manifest


_MODULE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _is_number(value):
    """True for an int or float that is finite (bool excluded)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < float("inf")


def check_preprocessing(preprocessing):
    """Return a normalized copy of a preprocessing record (see PREPROCESSING_TYPES); raise XaiError if invalid."""
    if preprocessing is None:
        return {"type": "none"}
    if not isinstance(preprocessing, dict) or preprocessing.get("type") not in PREPROCESSING_TYPES:
        raise XaiError(
            "preprocessing must be a dict whose 'type' is one of %s, not %r" % (", ".join(PREPROCESSING_TYPES), preprocessing)
        )
    kind = preprocessing["type"]
    if kind == "none":
        return {"type": "none"}
    if kind == "scale":
        scale, offset = preprocessing.get("scale", 1.0), preprocessing.get("offset", 0.0)
        if not (_is_number(scale) and _is_number(offset)):
            raise XaiError("scale preprocessing needs finite numbers 'scale' and 'offset', not %r" % (preprocessing,))
        return {"type": "scale", "scale": float(scale), "offset": float(offset)}
    module = preprocessing.get("module")
    if not isinstance(module, str) or not _MODULE_PATTERN.match(module):
        raise XaiError("keras_app preprocessing needs 'module', e.g. 'vgg16', not %r" % (preprocessing,))
    return {"type": "keras_app", "module": module}
