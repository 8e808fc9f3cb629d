"""Every attribution method, one module each; importing this package registers them all.

The modules import TensorFlow / iNNvestigate only when computing, so listing methods stays cheap.
"""

import importlib
import pkgutil

for _module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
    importlib.import_module("%s.%s" % (__name__, _module))
