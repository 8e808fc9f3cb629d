"""What computed a result, for cache keys: the engine backend, the method's version, the libraries.

A result cached under other versions is never served: after an upgrade or a method fix the maps
are computed again. Everything here is read without importing TensorFlow (the plugin process
stays light): library versions come from the installed distributions' metadata.
"""

import functools
import importlib.metadata
import importlib.util

LIBRARIES = ("tensorflow", "keras", "innvestigate", "tb-xai")


@functools.lru_cache(maxsize=1)
def library_versions():
    """{distribution: version or None when not installed} of the libraries that compute results."""
    out = {}
    for name in LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def backend_name(manifest):
    """"native" or "innvestigate": the backend that computes a checkpoint's results (NATIVE_CONTRACT rule)."""
    try:
        from tb_xai_plugin.engine.backends import backend_name as engine_rule
    except ImportError:
        return _backend_rule(manifest)
    return engine_rule(manifest)


def _backend_rule(manifest):
    """Keras 3 checkpoints -> native; Keras 2 (or unknown) -> innvestigate if importable here, else native."""
    keras = str((manifest.get("versions") or {}).get("keras") or "2")
    if keras.startswith("3"):
        return "native"
    return "innvestigate" if importlib.util.find_spec("innvestigate") is not None else "native"


def engine_key(manifest, method=None):
    """The cache-key part naming what computes a checkpoint's results (and a method's version)."""
    key = ["engine", backend_name(manifest), sorted(library_versions().items())]
    return key if method is None else key + [method.id, int(method.version)]
