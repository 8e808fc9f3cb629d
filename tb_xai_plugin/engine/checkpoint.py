"""What every backend's loaded model shares: the manifest's facts, preprocessing, a bounded cache, the file checks.

`ModelBase` is the backend-neutral part of a loaded model (see backends.native.loading.NativeModel and
backends.innvestigate.loading.LoadedModel):
    manifest, input_shape (H, W, C), num_classes, layers (manifest["layers"]), cache (BoundedCache)
    head                            model_info.HEADS: how logits become probabilities (see docs/heads.md)
    backend                         "native" | "innvestigate"
    preprocess(images)              stored images (uint8 / float, NHWC) -> float32 model input
    folded                          None, or (scale, offset) float32 [C]: the model's leading elementwise
                                    preprocessing (Rescaling, Normalization, x * c + d ops) that the
                                    backend's canonizer took out of the model; preprocess applies it,
                                    so every method explains the model from its first real layer
    folded_layer(name)              whether manifest layer `name` lies inside that folded preprocessing
                                    (the backend's; False here); asked by name, it is refused (FOLDED_LAYER)
    folded_layer_names()            the manifest layers folded_layer says are folded, in manifest order
Each backend adds the forward calls that backend-neutral code (predict, the perturbation methods) uses:
    scores(x, score)                float32 [N, K]: probabilities ("probability") or logits ("logit")
    probabilities(x)                scores(x, "probability")
    probabilities_and_means(x, layer, neuron)   ([N, K], [N] mean of the layer's output / channel)
    probs_of(x)                     context yielding {"probs": None | [N, K]} filled by a method's own run
    close()
Pure Python at import; TensorFlow loads inside the functions that need it.
"""

import collections
import contextlib
import os

import numpy as np

from tb_xai_plugin import model_info, safety
from tb_xai_plugin.errors import NotFoundError, XaiError

FORMATS = ("h5", "savedmodel", "keras")
CACHE_SIZE = 64  # compiled functions / analyzers and small entries per model
FOLDED_LAYER = ("layer %r is input preprocessing, folded into the recorded preprocessing: every method "
                "explains the model from its first real layer")


class BoundedCache(collections.OrderedDict):
    """A dict that keeps its `maxsize` most recently used entries (get/setitem refresh recency)."""

    def __init__(self, maxsize=CACHE_SIZE):
        super().__init__()
        self.maxsize = maxsize

    def __getitem__(self, key):
        value = super().__getitem__(key)
        self.move_to_end(key)
        return value

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.maxsize:
            self.popitem(last=False)

    def get_or_build(self, key, build):
        """The cached value for `key`, built with `build()` and stored on first use."""
        if key not in self:
            self[key] = build()
        return self[key]


class ModelBase:
    """The manifest's facts and preprocessing of a loaded checkpoint; see the module docstring."""

    backend = None

    def __init__(self, manifest):
        self.manifest = manifest
        self.input_shape = tuple(int(d) for d in manifest["input_shape"])
        self.num_classes = int(manifest["num_classes"])
        self.layers = manifest["layers"]
        self.head = model_info.manifest_head(manifest)
        self.cache = BoundedCache()
        self.folded = None
        self._probe = None  # see probs_of

    def preprocess(self, images):
        """Stored images [N,H,W,C] (or one [H,W,C]) -> float32 model input, per manifest["preprocessing"]."""
        x = np.array(images, dtype=np.float32, copy=True)
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or tuple(x.shape[1:]) != self.input_shape:
            raise XaiError(
                "images have shape %s; this model takes [N, %s]"
                % (list(np.shape(images)), ", ".join(map(str, self.input_shape)))
            )
        x = preprocess_array(x, self.manifest["preprocessing"])
        return x if self.folded is None else apply_folded(x, self.folded)

    def folded_layer(self, name):
        """Whether manifest layer `name` lies inside the folded preprocessing (the backends say; none here)."""
        return False

    def folded_layer_names(self):
        """The manifest's layer names that lie inside the folded preprocessing, in manifest order."""
        return [layer["name"] for layer in self.layers if self.folded_layer(layer["name"])]

    def probabilities(self, x):
        """float32 [N, K] class probabilities of preprocessed inputs x (one forward pass)."""
        return self.scores(x, "probability")

    @contextlib.contextmanager
    def probs_of(self, x):
        """Yield {"probs": None}, filled when the backend's compute for this very array x also yields its probabilities."""
        self._probe = {"x": x, "probs": None}
        try:
            yield self._probe
        finally:
            self._probe = None


def preprocess_array(x, preprocessing):
    """float32 NHWC x -> the model input: x, a*x+b, or keras.applications.<module>.preprocess_input(x)."""
    kind = preprocessing.get("type") if isinstance(preprocessing, dict) else None
    if kind == "none":
        return x
    if kind == "scale":
        return (np.float32(preprocessing["scale"]) * x + np.float32(preprocessing["offset"])).astype(np.float32)
    if kind == "keras_app":
        return _keras_app_preprocess(preprocessing.get("module"))(x).astype(np.float32)
    raise XaiError("unknown preprocessing %r in the manifest" % (preprocessing,))


def apply_folded(x, folded):
    """x * scale + offset per channel: the preprocessing folded out of the model."""
    scale, offset = folded
    return (x * np.float32(scale) + np.float32(offset)).astype(np.float32)


def _keras_app_preprocess(module):
    """tf.keras.applications.<module>.preprocess_input, for a module name that has one."""
    import tensorflow as tf

    if not isinstance(module, str) or not module.isidentifier() or module.startswith("_"):
        raise XaiError("invalid keras_app preprocessing module %r" % (module,))
    found = getattr(tf.keras.applications, module, None)
    if found is None or not hasattr(found, "preprocess_input"):
        raise XaiError("tf.keras.applications has no module %r with preprocess_input" % module)
    return found.preprocess_input


def check_file(path, manifest, formats, allow_unsafe):
    """The manifest's format, after checking the file exists, is one of `formats` and holds no refused layer."""
    if not os.path.exists(path):
        raise NotFoundError("checkpoint file %s is missing" % os.path.basename(path))
    fmt = manifest.get("format")
    if fmt not in formats:
        raise XaiError("unsupported checkpoint format %r (this engine backend reads %s)" % (fmt, ", ".join(formats)))
    safety.check_file(path, fmt, allow_unsafe)
    return fmt


def check_matches_manifest(input_shape, output_shape, manifest):
    """XaiError when the loaded model's input shape or class count differ from the manifest."""
    shape = [None if d is None else int(d) for d in tuple(input_shape)[1:]]
    if shape != [int(d) for d in manifest["input_shape"]]:
        raise XaiError("model input %s differs from the manifest's %s" % (shape, manifest["input_shape"]))
    if len(output_shape) != 2 or output_shape[-1] != model_info.output_units(manifest):
        raise XaiError("model output %s does not give the manifest's %s classes (%s head)" % (
            tuple(output_shape), manifest["num_classes"], model_info.manifest_head(manifest)))
