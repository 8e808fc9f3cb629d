"""The gradient family on the native backend: gradient, input x gradient, SmoothGrad, Integrated Gradients.

One tf.function per model computes d logit_t / d x with a GradientTape (logit_t the target's logit of
each image, targets as a tensor so one trace serves every batch) and, from the same forward pass, the
probabilities the dispatcher reports as scores (model.offer_probs); SmoothGrad and Integrated Gradients
average it (engine.gradient_averages, shared with the iNNvestigate backend).
"""

import numpy as np

from tb_xai_plugin.engine import gradient_averages
from tb_xai_plugin.engine.backends.native import implements

POSTPROCESS = {"none": lambda g: g, "abs": np.abs, "square": np.square}


def target_gradient(model):
    """The model's cached tf.function (x [N,H,W,C], targets int64 [N]) -> (d logit_targets / d x, probabilities)."""
    return model.function(("gradient",), lambda: _gradient_function(model))


def _gradient_function(model):
    """tf.function: the gradient of each image's target logit with respect to its input, and the probabilities."""
    import tensorflow as tf

    logits_model = model.logits_model

    def gradient(x, targets):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = logits_model(x, training=False)
            chosen = tf.gather(logits, targets, axis=1, batch_dims=1)  # [N]: images are independent
        return tape.gradient(chosen, x), model.probabilities_from_logits(logits)

    return tf.function(gradient, input_signature=[model.input_spec(), tf.TensorSpec([None], tf.int64)])


def gradient_of(model, postprocess="none"):
    """A numpy callable (x, targets) -> postprocess(d logit_t / d x), float32 [N,H,W,C]."""
    fn = target_gradient(model)

    def gradient_at(x, targets):
        grads, probs = fn(np.asarray(x, np.float32), np.asarray(targets, np.int64))
        model.offer_probs(x, probs.numpy())
        return POSTPROCESS[postprocess](grads.numpy())

    return gradient_at


@implements("gradient")
def gradient(model, x, targets, params, layer, neuron, rng):
    """map = postprocess(d y_t / d x), y_t the target's logit (Simonyan et al. 2013)."""
    return gradient_of(model, params["postprocess"])(x, targets)


@implements("input_t_gradient")
def input_t_gradient(model, x, targets, params, layer, neuron, rng):
    """map = x * d y_t / d x (Shrikumar et al. 2016)."""
    return x * gradient_of(model)(x, targets)


@implements("smoothgrad")
def smoothgrad(model, x, targets, params, layer, neuron, rng):
    """SmoothGrad over the native gradient (gradient_averages.smoothgrad)."""
    return gradient_averages.smoothgrad(gradient_of(model, params["postprocess"]), x, targets, params, rng)


@implements("integrated_gradients")
def integrated_gradients(model, x, targets, params, layer, neuron, rng):
    """Integrated Gradients over the native gradient (gradient_averages.integrated_gradients)."""
    return gradient_averages.integrated_gradients(gradient_of(model), model, x, targets, params)
