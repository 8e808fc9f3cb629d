"""Graph mode for the iNNvestigate backend: iNNvestigate 2 and this backend's sessions need eager execution off."""


def enable_graph_mode():
    """Disable eager execution process-wide (iNNvestigate needs graph mode; cannot be undone).

    Only a process that serves Keras 2 checkpoints with iNNvestigate calls this, first thing; the native
    backend needs eager execution and never calls it.
    """
    import tensorflow as tf

    if tf.executing_eagerly():
        tf.compat.v1.disable_eager_execution()
