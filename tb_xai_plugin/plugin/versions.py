"""What computed a result, for cache keys: the engine backend, the method's version, the libraries.

A result cached under other versions is never served: after an upgrade or a method fix the maps
are computed again. Everything here is read without importing TensorFlow (the plugin process
stays light): library versions come from the installed distributions' metadata, the backend from
the engine's pure-Python rule (engine.backends.backend_name).
"""

import functools
import importlib.metadata

from tb_xai_plugin.engine.backends import backend_name

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


def engine_key(manifest, method=None):
    """The cache-key part naming what computes a checkpoint's results (and a method's version)."""
    key = ["engine", backend_name(manifest), sorted(library_versions().items())]
    return key if method is None else key + [method.id, int(method.version)]
