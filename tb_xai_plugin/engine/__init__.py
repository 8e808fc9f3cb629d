"""The attribution engine: pure functions from (checkpoint, method, images, target) to maps.

Two backends compute the maps (engine.backends): `native` (Keras 3, eager, tf.function) and
`innvestigate` (Keras 2 + iNNvestigate in graph mode); the checkpoint's manifest picks one
(backend_name). Cheap to import: the plugin process lists methods through it; TensorFlow loads on
first use.

    load_checkpoint(path, manifest, allow_unsafe=False)  -> the backend's loaded model  (engine.backends)
    attribute(model, method_id, images, ...)             -> Attribution        (engine.attribution)
    predict(model, images, top_k=5, ...)                 -> top classes/scores (engine.predict)
    activation_means(model, images, layer, neuron=None)  -> float32 [N]        (engine.predict)
    describe_methods(), applicable_methods(model)        the registry, as JSON
    backend_name(manifest)                               "native" | "innvestigate"
    enable_graph_mode()                                  the iNNvestigate backend's processes only, first thing
"""

# These modules import TensorFlow only inside functions. Importing them here also keeps
# `engine.predict` the function rather than the submodule of the same name.
from tb_xai_plugin.engine.attribution import Attribution, applicable_methods, attribute
from tb_xai_plugin.engine.backends import backend_name, load_checkpoint
from tb_xai_plugin.engine.backends.innvestigate.graph_mode import enable_graph_mode
from tb_xai_plugin.engine.backends.innvestigate.loading import LoadedModel
from tb_xai_plugin.engine.predict import activation_means, predict
from tb_xai_plugin.engine.registry import describe_methods

__all__ = [
    "load_checkpoint",
    "backend_name",
    "LoadedModel",
    "attribute",
    "Attribution",
    "predict",
    "activation_means",
    "describe_methods",
    "applicable_methods",
    "enable_graph_mode",
]
