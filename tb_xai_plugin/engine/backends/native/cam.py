"""Grad-CAM, Guided Grad-CAM and activation maps on the native backend (tf.function + GradientTape).

Selvaraju et al. 2017, https://arxiv.org/abs/1610.02391. The layer's output is taken where the model
calls it (NativeModel.layer_and_logits); maps are resized to the input bilinearly with half-pixel
centres (tf.image.resize), as the iNNvestigate backend does. Guided Grad-CAM's guided half is the
native guided backprop (guided.py), applied to any model: non-ReLU activations pass plain gradients.
"""

import numpy as np

from tb_xai_plugin.engine import layers
from tb_xai_plugin.engine.backends.native import guided, implements


def to_input_size(maps, model):
    """TF op: [N, h, w] maps resized bilinearly (half-pixel centres) to [N, H, W] of the input."""
    import tensorflow as tf

    height, width = model.input_shape[:2]
    return tf.image.resize(maps[..., None], (height, width), method="bilinear")[..., 0]


def _grad_cam_function(model, layer):
    """tf.function (x, targets) -> ([N, H, W] Grad-CAM of `layer`, probabilities [N, K]), built once per (model, layer)."""
    import tensorflow as tf

    both = model.layer_and_logits(layer)

    def grad_cam(x, targets):
        with tf.GradientTape() as tape:
            acts, logits = both(x, training=False)  # [N, h, w, K], [N, classes]
            chosen = tf.gather(logits, targets, axis=1, batch_dims=1)
        grads = tape.gradient(chosen, acts)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # a_k: [N, 1, 1, K]
        return to_input_size(tf.nn.relu(tf.reduce_sum(weights * acts, axis=3)), model), model.probabilities_from_logits(logits)

    return tf.function(grad_cam, input_signature=[model.input_spec(), tf.TensorSpec([None], tf.int64)])


def grad_cam_maps(model, x, targets, layer):
    """float32 [N, H, W]: upsample(ReLU(sum_k a_k A_k)), a_k = spatial mean of d y_t / d A_k (the pass's probabilities offered)."""
    from tb_xai_plugin.errors import XaiError

    fn = model.function(("grad_cam", layer), lambda: _grad_cam_function(model, layer))
    try:
        maps, probs = fn(np.asarray(x, np.float32), np.asarray(targets, np.int64))
    except (ValueError, TypeError) as e:  # no gradient path from the layer to the logits
        raise XaiError("the target logit does not depend on layer %r: %s" % (layer, e)) from e
    model.offer_probs(x, probs.numpy())
    return maps.numpy()


@implements("grad_cam")
def grad_cam(model, x, targets, params, layer, neuron, rng):
    """map = upsample(ReLU(sum_k a_k A_k)), a_k = mean over space of d y_c / d A_k, y_c the target logit."""
    layer = layers.spatial_layer(model, layer, "Grad-CAM")["name"]
    return grad_cam_maps(model, x, targets, layer)


@implements("guided_grad_cam")
def guided_grad_cam(model, x, targets, params, layer, neuron, rng):
    """map[n, h, w, c] = guided_backprop[n, h, w, c] * upsampled Grad-CAM[n, h, w]."""
    layer = layers.spatial_layer(model, layer, "Guided Grad-CAM")["name"]
    return guided.run_rule(model, "guided", x, targets) * grad_cam_maps(model, x, targets, layer)[..., None]


def _activation_function(model, layer, neuron):
    """tf.function x -> ([N, H, W]: the layer's channel `neuron` (or channel mean) at input size, probabilities [N, K])."""
    import tensorflow as tf

    both = model.layer_and_logits(layer)

    def activation(x):
        acts, logits = both(x, training=False)
        maps = tf.reduce_mean(acts, axis=3) if neuron is None else acts[..., neuron]
        return to_input_size(maps, model), model.probabilities_from_logits(logits)

    return tf.function(activation, input_signature=[model.input_spec()])


@implements("activation")
def activation(model, x, targets, params, layer, neuron, rng):
    """map = upsample(A[..., neuron]) or upsample(mean_k A[..., k]) of the layer's output A; targets unused."""
    layer = layers.spatial_layer(model, layer, "An activation map")
    if neuron is not None:
        layers.check_neuron(neuron, layer["output_shape"][-1], layer["name"])
    fn = model.function(("activation", layer["name"], neuron), lambda: _activation_function(model, layer["name"], neuron))
    maps, probs = fn(np.asarray(x, np.float32))
    model.offer_probs(x, probs.numpy())
    return maps.numpy()
