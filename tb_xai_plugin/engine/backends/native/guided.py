"""Deconvnet and guided backprop on the native backend: the gradient with the ReLUs' backward pass replaced.

Zeiler & Fergus 2014 (arXiv:1311.2901): a ReLU passes the backward signal's positive part, whatever
the forward pass did. Springenberg et al. 2014 (arXiv:1412.6806): a ReLU passes it only where it is
positive and the unit was active. Both start from d y_t / d y_t = 1, as the gradient does.

The user's model is never changed: inside a tf.function, the logits model is called under a
gradient_override_map of its Relu / Relu6 ops (ops of that trace only) and differentiated with
tf.gradients, which honours the override. Models with other nonlinearities are refused, as
iNNvestigate refuses them: the rules are defined for ReLU networks.
"""

import numpy as np

from tb_xai_plugin.engine.backends.native import implements

RULES = ("deconvnet", "guided")
PLAIN_ACTIVATIONS = ("relu", "linear", "relu6")
_REGISTERED = []  # TensorFlow's gradient registry refuses a name twice


def _register_gradients():
    """Register the two backward rules for Relu / Relu6 with TensorFlow (a process-wide registry), once."""
    import tensorflow as tf

    if _REGISTERED:
        return
    _REGISTERED.append(True)

    @tf.RegisterGradient("TbXaiNativeDeconvRelu")
    def _deconv_relu(op, grad):
        """The backward signal's positive part (the forward pass is ignored)."""
        return tf.nn.relu(grad)

    @tf.RegisterGradient("TbXaiNativeGuidedRelu")
    def _guided_relu(op, grad):
        """The positive part of the signal where the ReLU was active."""
        return tf.nn.relu(grad) * tf.cast(op.outputs[0] > 0, grad.dtype)

    @tf.RegisterGradient("TbXaiNativeGuidedRelu6")
    def _guided_relu6(op, grad):
        """The positive part of the signal where the ReLU6 was in its linear part."""
        out = op.outputs[0]
        return tf.nn.relu(grad) * tf.cast(tf.logical_and(out > 0, out < 6), grad.dtype)


OVERRIDES = {
    "deconvnet": {"Relu": "TbXaiNativeDeconvRelu", "Relu6": "TbXaiNativeDeconvRelu"},
    "guided": {"Relu": "TbXaiNativeGuidedRelu", "Relu6": "TbXaiNativeGuidedRelu6"},
}


def overridden_gradient(model, rule):
    """The model's cached tf.function (x, targets) -> d y_t / d x with `rule`'s ReLU backward pass."""
    return model.function(("relu_rule", rule), lambda: _overridden_function(model, rule))


def _overridden_function(model, rule):
    """tf.function: tf.gradients of the target logits through the logits model, ReLU gradients overridden."""
    import tensorflow as tf

    _register_gradients()
    logits_model = model.logits_model

    def backward(x, targets):
        with tf.compat.v1.get_default_graph().gradient_override_map(OVERRIDES[rule]):
            logits = logits_model(x, training=False)
        chosen = tf.gather(logits, targets, axis=1, batch_dims=1)
        return tf.gradients(chosen, x)[0]

    return tf.function(backward, input_signature=[model.input_spec(), tf.TensorSpec([None], tf.int64)])


def run_rule(model, rule, x, targets):
    """float32 [N,H,W,C]: the backward pass of `rule` for each image's target logit."""
    fn = overridden_gradient(model, rule)
    return fn(np.asarray(x, np.float32), np.asarray(targets, np.int64)).numpy()


def flat_layers(keras_model):
    """Every layer of a Keras model, nested models' layers in their place (the models themselves left out)."""
    for layer in keras_model.layers:
        if hasattr(layer, "layers") and type(layer).__name__ in ("Functional", "Sequential", "Model"):
            yield from flat_layers(layer)
        else:
            yield layer


def reason_not_relu(method_label):
    """An `applies` function: None for a ReLU network (its logits), else the first other activation."""

    def applies(model):
        for layer in flat_layers(model.logits_model):
            name = getattr(getattr(layer, "activation", None), "__name__", "linear")
            if type(layer).__name__ not in ("ReLU",) and name not in PLAIN_ACTIVATIONS:
                return "%s is defined for ReLU networks; layer %r uses %s" % (method_label, layer.name, name)
        return None

    return applies


def _refuse_unless_relu(model, method_label):
    """XaiError when the model has a non-ReLU activation (the dispatcher checks first; direct calls too)."""
    from tb_xai_plugin.errors import XaiError

    reason = reason_not_relu(method_label)(model)
    if reason:
        raise XaiError(reason)


@implements("deconvnet", applies=reason_not_relu("Deconvnet (a ReLU rule)"))
def deconvnet(model, x, targets, params=None, layer=None, neuron=None, rng=None):
    """map = backward pass of y_t with each ReLU passing relu(signal) (Zeiler & Fergus 2014)."""
    _refuse_unless_relu(model, "Deconvnet (a ReLU rule)")
    return run_rule(model, "deconvnet", x, targets)


@implements("guided_backprop", applies=reason_not_relu("Guided backprop (a ReLU rule)"))
def guided_backprop(model, x, targets, params=None, layer=None, neuron=None, rng=None):
    """map = d y_t / d x with every ReLU passing only positive signal where it was active (Springenberg et al. 2014).

    Called directly (Guided Grad-CAM does), non-ReLU activations pass plain gradients; the method itself is
    offered for ReLU networks only (applies), as the iNNvestigate backend offers it.
    """
    return run_rule(model, "guided", x, targets)
