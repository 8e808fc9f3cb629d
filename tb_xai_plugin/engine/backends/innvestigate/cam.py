"""Grad-CAM and Guided Grad-CAM: class activation maps weighted by the target logit's gradient.

Selvaraju et al. 2017, "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", https://arxiv.org/abs/1610.02391

Graph mode: the map's tensors are built once per (model, layer) with tf.gradients in the model's
graph and kept in model.cache; each call is one session run. Guided backprop is this backend's one
implementation of it (the method and Guided Grad-CAM's half): ReLU gradients overridden, started from 1.
"""

import numpy as np

from tb_xai_plugin.engine import layers
from tb_xai_plugin.engine.backends.innvestigate import analyzers, implements
from tb_xai_plugin.engine.backends.innvestigate.spatial import to_input_size
from tb_xai_plugin.errors import XaiError


def _grad_cam_tensors(model, layer):
    """(targets placeholder, [N, H, W] Grad-CAM at input size) for `layer`, built once per model."""
    key = ("grad_cam", layer)
    if key not in model.cache:
        import tensorflow as tf

        with model.in_graph():
            targets = tf.compat.v1.placeholder(tf.int64, [None], name="grad_cam_targets")
            logits = model.logits_model.outputs[0]  # [N, classes]
            acts = model.layer_output(layer)  # [N, h, w, K]
            target_logit = tf.reduce_sum(logits * tf.one_hot(targets, tf.shape(logits)[1]), axis=1)  # [N]
            grads = tf.gradients(target_logit, acts)[0]
            if grads is None:
                raise XaiError("the target logit does not depend on layer %r" % layer)
            weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # a_k: [N, 1, 1, K]
            cam = tf.nn.relu(tf.reduce_sum(weights * acts, axis=3))  # [N, h, w]
            model.cache[key] = (targets, to_input_size(cam, model))
    return model.cache[key]


@implements("grad_cam")
def grad_cam(model, x, targets, params, layer, neuron, rng):
    """map = upsample(ReLU(sum_k a_k A_k)), a_k = mean over space of d y_c / d A_k, y_c the target logit."""
    layer = layers.spatial_layer(model, layer, "Grad-CAM")["name"]
    targets_ph, cam = _grad_cam_tensors(model, layer)
    return model.run(cam, {model.input: x, targets_ph: np.asarray(targets, np.int64)})


GUIDED_GRADIENTS = {"Relu": "TbXaiGuidedRelu", "Relu6": "TbXaiGuidedRelu6"}  # op type -> override
_GUIDED_REGISTERED = []  # TensorFlow's gradient registry refuses a name twice


def _register_guided_gradients():
    """Register the guided ReLU gradients with TensorFlow (a process-wide registry), once."""
    import tensorflow as tf

    if _GUIDED_REGISTERED:
        return
    _GUIDED_REGISTERED.append(True)

    @tf.RegisterGradient(GUIDED_GRADIENTS["Relu"])
    def _guided_relu(op, grad):
        """Pass a gradient only where it is positive and the ReLU was active."""
        return tf.nn.relu(grad) * tf.cast(op.outputs[0] > 0, grad.dtype)

    @tf.RegisterGradient(GUIDED_GRADIENTS["Relu6"])
    def _guided_relu6(op, grad):
        """Pass a gradient only where it is positive and the ReLU6 was in its linear part."""
        out = op.outputs[0]
        return tf.nn.relu(grad) * tf.cast(tf.logical_and(out > 0, out < 6), grad.dtype)


def _guided_backprop_tensors(model):
    """(input, targets, [N, H, W, C] guided backprop) on a copy of the forward pass with guided ReLUs."""
    key = ("guided_backprop", "input")
    if key not in model.cache:
        import tensorflow as tf

        _register_guided_gradients()
        with model.building():
            x = tf.compat.v1.placeholder(model.input.dtype, model.input.shape, name="guided_backprop_input")
            with model.graph.gradient_override_map(GUIDED_GRADIENTS):
                logits = model.logits_model(x)  # new ops, shared weights: the override applies to them only
            targets = tf.compat.v1.placeholder(tf.int64, [None], name="guided_backprop_targets")
            target_logit = tf.reduce_sum(logits * tf.one_hot(targets, tf.shape(logits)[1]), axis=1)
            model.cache[key] = (x, targets, tf.gradients(target_logit, x)[0])
    return model.cache[key]


@implements("guided_backprop", applies=analyzers.applies("guided_backprop"))
def guided_backprop(model, x, targets, params=None, layer=None, neuron=None, rng=None):
    """d y_c / d x with every ReLU passing only positive gradients where it was active (Springenberg et al. 2015)."""
    x_ph, targets_ph, grads = _guided_backprop_tensors(model)
    return model.run(grads, {x_ph: x, targets_ph: np.asarray(targets, np.int64)})


def _guided_grad_cam_tensors(model, layer):
    """(input, targets) placeholders pairs and the [N, H, W, C] Guided Grad-CAM tensor for `layer`."""
    key = ("guided_grad_cam", layer)
    if key not in model.cache:
        cam_targets, cam = _grad_cam_tensors(model, layer)
        x, guided_targets, guided = _guided_backprop_tensors(model)
        with model.in_graph():
            model.cache[key] = ((model.input, x), (cam_targets, guided_targets), guided * cam[..., None])
    return model.cache[key]


@implements("guided_grad_cam")
def guided_grad_cam(model, x, targets, params, layer, neuron, rng):
    """map[n, h, w, c] = guided_backprop[n, h, w, c] * upsampled Grad-CAM[n, h, w]."""
    layer = layers.spatial_layer(model, layer, "Guided Grad-CAM")["name"]
    inputs, target_phs, maps = _guided_grad_cam_tensors(model, layer)
    feed = {ph: x for ph in inputs}
    feed.update({ph: np.asarray(targets, np.int64) for ph in target_phs})
    return model.run(maps, feed)
