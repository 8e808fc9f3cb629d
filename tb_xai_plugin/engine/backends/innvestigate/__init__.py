"""The iNNvestigate backend: Keras 2 checkpoints in graph mode, one tf.Graph and session per model.

    @implements("method.id"[, applies=fn])   register this backend's implementation (see engine.backends)
    enable_graph_mode()                      (graph_mode) once per process, before anything else

iNNvestigate 2.1.2 computes the gradient family, LRP and Deep Taylor (analyzers); this backend's own
modules add Grad-CAM, guided backprop, activation maps, DeepLIFT and PatternNet. Importing this
package imports every module in it, so each registers its implementations; none imports TensorFlow
or iNNvestigate before computing.
"""

import functools
import importlib
import pkgutil

from tb_xai_plugin.engine import backends

implements = functools.partial(backends.implements, "innvestigate")

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    importlib.import_module("%s.%s" % (__name__, _module))
