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

# These modules import TensorFlow only inside functions. Importing them here also keeps
# `engine.attribute` / `engine.predict` the functions rather than the submodules of the same name.
from tb_xai_plugin.engine.attribute import Attribution, applicable_methods, attribute
from tb_xai_plugin.engine.loading import LoadedModel, load_checkpoint
from tb_xai_plugin.engine.predict import activation_means, predict
from tb_xai_plugin.engine.registry import describe_methods

__all__ = [
    "enable_graph_mode",
    "load_checkpoint",
    "LoadedModel",
    "attribute",
    "Attribution",
    "predict",
    "activation_means",
    "describe_methods",
    "applicable_methods",
]


def enable_graph_mode():
    """Disable eager execution process-wide (iNNvestigate needs graph mode; cannot be undone)."""
    import tensorflow as tf

    if tf.executing_eagerly():
        tf.compat.v1.disable_eager_execution()
