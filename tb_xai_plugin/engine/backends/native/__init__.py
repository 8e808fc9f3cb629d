"""The native backend: Keras 3 on TensorFlow, eager execution left on; maps from tf.function + GradientTape.

    @implements("method.id")        register fn(model, x, targets, params, layer, neuron, rng) -> np.ndarray
                                    [N,H,W,C] or [N,h,w]; `model` is a loading.NativeModel
    @implements("method.id", applies=fn)   with applies(model) -> None | why this backend cannot explain it

Importing this package imports every module in it (pkgutil), so a new module registers by existing.
A method id with no native implementation is refused on a checkpoint this backend loads, with that reason.
"""

import functools
import importlib
import pkgutil

from tb_xai_plugin.engine import backends

implements = functools.partial(backends.implements, "native")

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    importlib.import_module("%s.%s" % (__name__, _module))
