"""DeepLIFT with the rescale rule on the native backend (Keras 3, eager, tf.function + GradientTape).

Shrikumar, Greenside & Kundaje 2017, https://arxiv.org/abs/1704.02685 (rescale rule, section 3.5.1)

The logits model is replayed layer by layer on the batch [x; x0] (nested models flattened, fused
activations split) with two kinds of steps wrapped in tf.custom_gradient:
- an elementwise nonlinearity y = g(u) passes the multiplier (g(u) - g(u0)) / (u - u0) to x's half
  (its plain gradient where |u - u0| < EPSILON) and zero to x0's half;
- a max-pool routes grad * (pool(u) - pool(u0)) to the maximum of u and divides by u - u0 there, or,
  where u - u0 is ~0 at that maximum, to the maximum of u0 (Captum's rule).
Every other supported layer is linear in the difference (dense, convolution, sums, average
pooling, inference-time batch norm) and keeps its gradient. The map is (x - x0) times the multiplier
at the input: it sums to f_c(x) - f_c(x0). The same rules as the iNNvestigate backend's
engine/backends/innvestigate/deeplift.py (which overrides graph-mode op gradients instead).
"""

import numpy as np

from tb_xai_plugin import model_info
from tb_xai_plugin.engine.backends.native import implements, walk
from tb_xai_plugin.engine.backends.native.lrp.propagation import is_constant_affine
from tb_xai_plugin.engine.deeplift_reference import reference

EPSILON = 1e-6
# Layer types the rescale rule covers: linear, elementwise, or max-pooling (containers are walked into).
SUPPORTED_LAYERS = (
    "InputLayer", "Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Flatten", "Reshape",
    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dropout", "SpatialDropout2D", "BatchNormalization",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D",
    "Cropping2D", "Add", "Subtract", "Average", "Concatenate", "Rescaling", "Normalization",
) + model_info.INFERENCE_IDENTITY_TYPES
ELEMENTWISE_LAYERS = ("LeakyReLU", "ELU")  # layers the walk calls as a whole ("layer" steps) that are elementwise
NOT_ELEMENTWISE = ("linear", "softmax", "log_softmax")  # activation names the rescale rule leaves alone


def _halves(tensor):
    """(first half, second half) of a [2N, ...] tensor along the batch: x's part and x0's part."""
    import tensorflow as tf

    half = tf.shape(tensor)[0] // 2
    return tensor[:half], tensor[half:]


def rescaled_elementwise(g):
    """y = g(u) whose gradient is grad * (y - y0) / (u - u0) on x's half, zero on x0's half."""
    import tensorflow as tf

    @tf.custom_gradient
    def call(u):
        y = g(u)

        def gradient(grad):
            with tf.GradientTape() as tape:
                tape.watch(u)
                again = g(u)
            (plain, _), (u1, u0), (y1, y0), (g1, g0) = (
                _halves(tape.gradient(again, u, output_gradients=grad)), _halves(u), _halves(y), _halves(grad)
            )  # fmt: skip
            du = u1 - u0
            safe = tf.abs(du) > EPSILON
            ratio = tf.where(safe, g1 * (y1 - y0) / tf.where(safe, du, tf.ones_like(du)), plain)
            return tf.concat([ratio, tf.zeros_like(g0)], axis=0)

        return y, gradient

    return call


def rescaled_max_pool(layer):
    """The max-pool of `layer` whose gradient routes grad * (pool(u) - pool(u0)) as the module docstring says."""
    import tensorflow as tf

    ksize, strides = [1, *layer.pool_size, 1], [1, *layer.strides, 1]
    padding = layer.padding.upper()

    def pool_grad(u, y, grad):
        """The plain max-pool gradient: grad to each window's maximum of u."""
        return tf.raw_ops.MaxPoolGrad(orig_input=u, orig_output=y, grad=grad, ksize=ksize, strides=strides, padding=padding)

    @tf.custom_gradient
    def call(u):
        y = tf.nn.max_pool2d(u, ksize, strides, padding)

        def gradient(grad):
            (u1, u0), (y1, y0), (g1, _) = _halves(u), _halves(y), _halves(grad)
            _, argmax = tf.nn.max_pool_with_argmax(u1, ksize, strides, padding, include_batch_in_index=True)
            u0_at_max = tf.reshape(tf.gather(tf.reshape(u0, [-1]), tf.reshape(argmax, [-1])), tf.shape(y1))
            by_u = tf.cast(tf.abs(y1 - u0_at_max) > EPSILON, g1.dtype)  # u - u0 at u's maximum is usable
            delta = g1 * (y1 - y0)
            routed = pool_grad(u1, y1, delta * by_u) + pool_grad(u0, y0, delta * (1 - by_u))
            du = u1 - u0
            safe = tf.abs(du) > EPSILON
            ratio = tf.where(safe, routed / tf.where(safe, du, tf.ones_like(du)), pool_grad(u1, y1, g1))
            return tf.concat([ratio, tf.zeros_like(u0)], axis=0)

        return y, gradient

    return call


def _elementwise(step):
    """True if the step is an elementwise nonlinearity (a fused or Activation one: not linear / softmax)."""
    if step.kind == "activation":
        return getattr(step.fn, "__name__", None) not in NOT_ELEMENTWISE  # a ReLU layer has no __name__
    return step.kind == "layer" and type(step.layer).__name__ in ELEMENTWISE_LAYERS


def rescaled_call(step):
    """The step's call with the rescale rule: tensors -> tuple of outputs, wrapped if elementwise or a max-pool."""
    if _elementwise(step):
        return lambda u: (rescaled_elementwise(lambda v: step(v)[0])(u),)
    if type(step.layer).__name__ == "MaxPooling2D" and step.layer.data_format == "channels_last":
        return lambda u: (rescaled_max_pool(step.layer)(u),)
    return step


def replay(graph, x):
    """The logits of the walked logits model on x, every step called through rescaled_call."""
    values = {graph.inputs[0]: x}
    for step in graph.steps:
        values.update(zip(step.outputs, rescaled_call(step)(*[values[k] for k in step.inputs])))
    return values[graph.outputs[0]]


def _contributions_function(model):
    """tf.function (x, x0, targets) -> (x - x0) * rescale multipliers of the target logit, traced per shape."""
    import tensorflow as tf

    graph = walk.Walk(model.logits_model)

    @tf.function(reduce_retracing=True)
    def contributions(x, x0, targets):
        both = tf.concat([x, x0], axis=0)
        with tf.GradientTape() as tape:
            tape.watch(both)
            logits = replay(graph, both)
            first = logits[: tf.shape(x)[0]]
            target_logit = tf.reduce_sum(first * tf.one_hot(targets, tf.shape(logits)[1], dtype=first.dtype), axis=1)
        multipliers = tape.gradient(target_logit, both)[: tf.shape(x)[0]]
        return (x - x0) * multipliers

    return contributions


def reason_unsupported(model):
    """None if every layer's type (nested models' layers too) is one the rescale rule covers, else the others."""
    return model.cache.get_or_build(("deeplift", "reason"), lambda: _reason_unsupported(model.keras_model))


def _reason_unsupported(keras_model):
    """reason_unsupported for one Keras model, from its walk."""
    steps = [step for step in walk.Walk(keras_model).steps if not is_constant_affine(step)]  # linear: multiplier = gradient
    unknown = sorted({type(step.layer).__name__ for step in steps} - set(SUPPORTED_LAYERS))
    if unknown:
        return "the rescale rule here covers linear, elementwise and max-pooling layers, not %s" % ", ".join(unknown)
    return None


@implements("deeplift", applies=reason_unsupported)
def deeplift(model, x, targets, params, layer, neuron, rng):
    """map = (x - x0) * m, m the rescale-rule multipliers of the target logit: sum(map) = f_c(x) - f_c(x0)."""
    contributions = model.cache.get_or_build(("deeplift", "rescale"), lambda: _contributions_function(model))
    x0 = reference(model, x, params)
    return contributions(x, x0, np.asarray(targets, np.int64)).numpy()

