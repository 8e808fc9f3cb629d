"""The attribution engine: pure functions from (checkpoint, method, images, target) to maps.

Runs in graph mode (eager execution disabled), one tf.Graph and session per loaded model.
Cheap to import: the plugin process lists methods through it; TensorFlow loads on first use.

    enable_graph_mode()                                  once per process, before anything else
    load_checkpoint(path, manifest, allow_unsafe=False)  -> LoadedModel        (engine.loading)
    attribute(model, method_id, images, ...)             -> Attribution        (engine.attribute)
    predict(model, images, top_k=5, ...)                 -> top classes/scores (engine.predict)
    activation_means(model, images, layer, neuron=None)  -> float32 [N]        (engine.predict)
    describe_methods(), applicable_methods(model)        the registry, as JSON
"""

from tb_xai_plugin.engine.registry import describe_methods

_LAZY = {
    "load_checkpoint": "tb_xai_plugin.engine.loading",
    "LoadedModel": "tb_xai_plugin.engine.loading",
    "attribute": "tb_xai_plugin.engine.attribute",
    "Attribution": "tb_xai_plugin.engine.attribute",
    "applicable_methods": "tb_xai_plugin.engine.attribute",
    "predict": "tb_xai_plugin.engine.predict",
    "activation_means": "tb_xai_plugin.engine.predict",
}

__all__ = ["enable_graph_mode", "describe_methods", *_LAZY]


def enable_graph_mode():
    """Disable eager execution process-wide (iNNvestigate needs graph mode; cannot be undone)."""
    import tensorflow as tf

    if tf.executing_eagerly():
        tf.compat.v1.disable_eager_execution()


def __getattr__(name):
    """Import the engine's TensorFlow modules only when one of their names is used."""
    if name not in _LAZY:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
