"""The engine's backends: which one a checkpoint gets, and each backend's implementation of a method.

    backend_name(manifest)        "native" | "innvestigate"; pure Python (the plugin process calls it for cache keys)
    load_checkpoint(path, manifest, allow_unsafe=False)   the backend's loaded model (model.backend names it)
    implements(backend, method_id, applies=None)          decorator registering a backend's implementation
    implements_everywhere(method_id)                      the same function for every backend (perturbation methods)
    implementation(backend, method_id)                    the Implementation, or None

An implementation is fn(model, x, targets, params, layer, neuron, rng) -> np.ndarray [N,H,W,C] or [N,h,w],
with an optional applies(model) -> None | the reason the backend cannot explain that model.
Backends: `native` (Keras 3, eager with tf.function, backends/native/) and `innvestigate` (Keras 2 and
iNNvestigate in graph mode, backends/innvestigate/). The rule: a checkpoint whose manifest says
versions.keras 3.x goes to `native`; a Keras 2 one (versions.keras 2.x or missing: old logdirs) goes to
`innvestigate` where iNNvestigate is importable in this process, else to `native`, which reads Keras 2
.h5 files through Keras 3's legacy loader.
"""

import collections
import importlib
import importlib.util

BACKENDS = ("native", "innvestigate")
Implementation = collections.namedtuple("Implementation", "compute applies")
IMPLEMENTATIONS = {name: {} for name in BACKENDS}
_LOADED = set()


def keras_major(manifest):
    """The major Keras version that wrote the checkpoint: from manifest["versions"]["keras"], else 2."""
    version = str((manifest.get("versions") or {}).get("keras") or "2")
    return int(version.split(".")[0]) if version.split(".")[0].isdigit() else 2


def innvestigate_available():
    """True when iNNvestigate can be imported in this process's stack (found without importing it)."""
    return importlib.util.find_spec("innvestigate") is not None


def backend_name(manifest):
    """The backend that explains a checkpoint with this manifest: "native" or "innvestigate" (see the module docstring)."""
    if keras_major(manifest) >= 3 or not innvestigate_available():
        return "native"
    return "innvestigate"


def load_checkpoint(path, manifest, allow_unsafe=False):
    """The checkpoint at `path` loaded by its backend, verified against `manifest`."""
    loading = importlib.import_module("%s.%s.loading" % (__name__, backend_name(manifest)))
    return loading.load_checkpoint(path, manifest, allow_unsafe=allow_unsafe)


def implements(backend, method_id, applies=None):
    """Decorator: register fn as `backend`'s implementation of `method_id` (ids are unique per backend)."""

    def register(fn):
        if method_id in IMPLEMENTATIONS[backend]:
            raise ValueError("%s backend: method %r implemented twice" % (backend, method_id))
        IMPLEMENTATIONS[backend][method_id] = Implementation(fn, applies)
        return fn

    return register


def implements_everywhere(method_id, applies=None):
    """Decorator: register fn as every backend's implementation of `method_id` (it needs only forward scores)."""

    def register(fn):
        for backend in BACKENDS:
            implements(backend, method_id, applies)(fn)
        return fn

    return register


def implementation(backend, method_id):
    """`backend`'s Implementation of `method_id`, or None (its modules are imported on first use)."""
    if backend not in _LOADED:
        importlib.import_module("tb_xai_plugin.engine.perturbation")
        importlib.import_module("%s.%s" % (__name__, backend))
        _LOADED.add(backend)
    return IMPLEMENTATIONS[backend].get(method_id)
