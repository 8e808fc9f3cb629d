"""DeepLIFT with the rescale rule: contributions of x - x0 to f(x) - f(x0), layer by layer.

Shrikumar, Greenside & Kundaje 2017, "Learning Important Features Through Propagating Activation
Differences", https://arxiv.org/abs/1704.02685 (rescale rule, section 3.5.1)

Graph mode: a copy of the logits model runs on the batch [x; x0] with the gradients of its
nonlinear ops overridden. An elementwise op y = g(u) passes the multiplier (g(u) - g(u0)) / (u - u0)
(its plain gradient where |u - u0| < EPSILON); a max-pool routes grad * (pool(u) - pool(u0)) to
the maximum of u and divides by u - u0 there (Captum's rule), or, where u - u0 is ~0 at that
maximum, to the maximum of u0 (where u - u0 is then at least the pooled difference). Linear ops (dense, convolution,
sums, average pooling, inference-time batch norm) keep their gradients, which are exact for
differences. The map is (x - x0) times the multiplier at the input, so it sums to f_c(x) - f_c(x0)
(summation to delta), up to the EPSILON fallbacks. Ops that multiply two activations (gates,
attention) are not covered: `applies` refuses the layer types that make them.
"""

import numpy as np

from tb_xai_plugin.engine.backends.innvestigate import canonize, implements
from tb_xai_plugin.engine.deeplift_reference import reference

EPSILON = 1e-6
ELEMENTWISE_OPS = ("Relu", "Relu6", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh", "Softplus")
POOL_OPS = ("MaxPool",)
OVERRIDE_PREFIX = "TbXaiRescale"
# Layer types whose ops are linear, elementwise, or max-pooling: the rescale rule covers them.
SUPPORTED_LAYERS = (
    "InputLayer", "Dense", "Conv1D", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Flatten", "Reshape",
    "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "Dropout", "SpatialDropout2D", "BatchNormalization",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D",
    "Cropping2D", "Add", "Subtract", "Average", "Concatenate", "Rescaling", "Normalization",
)
_REGISTERED = []  # TensorFlow's gradient registry refuses a name twice


def _halves(tensor):
    """(first half, second half) of a [2N, ...] tensor along the batch: x's part and x0's part."""
    import tensorflow as tf

    half = tf.shape(tensor)[0] // 2
    return tensor[:half], tensor[half:]


def _rescale_elementwise(plain_gradient):
    """A gradient function for y = g(u): grad * (y - y0) / (u - u0) on x's half, zero on x0's half."""
    import tensorflow as tf

    def gradient(op, grad):
        plain = plain_gradient(op, grad)
        plain = plain[0] if isinstance(plain, (list, tuple)) else plain
        (u, u0), (y, y0), (g, g0) = _halves(op.inputs[0]), _halves(op.outputs[0]), _halves(grad)
        du = u - u0
        safe = tf.abs(du) > EPSILON
        ratio = tf.where(safe, g * (y - y0) / tf.where(safe, du, tf.ones_like(du)), _halves(plain)[0])
        return [tf.concat([ratio, tf.zeros_like(g0)], axis=0)] + [None] * (len(op.inputs) - 1)

    return gradient


def _rescale_max_pool(op, grad):
    """MaxPool: grad * (pool(u) - pool(u0)) to u's maximum, or to u0's where u - u0 is ~0 there; / (u - u0)."""
    import tensorflow as tf
    from tensorflow.python.ops import gen_nn_ops

    (u, u0), (y, y0), (g, g0) = _halves(op.inputs[0]), _halves(op.outputs[0]), _halves(grad)
    ksize, strides, padding = op.get_attr("ksize"), op.get_attr("strides"), op.get_attr("padding")
    _, argmax = tf.nn.max_pool_with_argmax(u, ksize, strides, padding, include_batch_in_index=True)
    u0_at_max = tf.reshape(tf.gather(tf.reshape(u0, [-1]), tf.reshape(argmax, [-1])), tf.shape(y))
    by_u = tf.cast(tf.abs(y - u0_at_max) > EPSILON, g.dtype)  # u - u0 at u's maximum is usable
    delta = g * (y - y0)
    routed = gen_nn_ops.max_pool_grad(u, y, delta * by_u, ksize, strides, padding)
    routed += gen_nn_ops.max_pool_grad(u0, y0, delta * (1 - by_u), ksize, strides, padding)
    plain = gen_nn_ops.max_pool_grad(u, y, g, ksize, strides, padding)
    du = u - u0
    safe = tf.abs(du) > EPSILON
    ratio = tf.where(safe, routed / tf.where(safe, du, tf.ones_like(du)), plain)
    return tf.concat([ratio, tf.zeros_like(u0)], axis=0)


def _register_gradients():
    """Register the rescale gradients with TensorFlow (a process-wide registry), once."""
    import tensorflow as tf
    from tensorflow.python.framework import ops

    if _REGISTERED:
        return
    _REGISTERED.append(True)
    for op_type in ELEMENTWISE_OPS:
        tf.RegisterGradient(OVERRIDE_PREFIX + op_type)(_rescale_elementwise(ops._gradient_registry.lookup(op_type)))
    tf.RegisterGradient(OVERRIDE_PREFIX + "MaxPool")(_rescale_max_pool)


def _deeplift_tensors(model):
    """(x, x0, targets placeholders, [N, H, W, C] contributions) on a copy with rescale gradients, built once."""
    key = ("deeplift", "rescale")
    if key not in model.cache:
        import tensorflow as tf

        _register_gradients()
        overrides = {op_type: OVERRIDE_PREFIX + op_type for op_type in ELEMENTWISE_OPS + POOL_OPS}
        with model.building():
            x = tf.compat.v1.placeholder(model.input.dtype, model.input.shape, name="deeplift_input")
            x0 = tf.compat.v1.placeholder(model.input.dtype, model.input.shape, name="deeplift_reference")
            both = tf.concat([x, x0], axis=0)
            with model.graph.gradient_override_map(overrides):
                logits = model.logits_model(both)  # new ops, shared weights: the overrides apply to them only
            targets = tf.compat.v1.placeholder(tf.int64, [None], name="deeplift_targets")
            first = logits[: tf.shape(x)[0]]
            target_logit = tf.reduce_sum(first * tf.one_hot(targets, tf.shape(logits)[1]), axis=1)
            multipliers = tf.gradients(target_logit, both)[0][: tf.shape(x)[0]]
            model.cache[key] = (x, x0, targets, (x - x0) * multipliers)
    return model.cache[key]


@implements("deeplift", applies=lambda model: reason_unsupported(model))
def deeplift(model, x, targets, params, layer, neuron, rng):
    """map = (x - x0) * m, m the rescale-rule multipliers of the target logit: sum(map) = f_c(x) - f_c(x0)."""
    x_ph, x0_ph, targets_ph, contributions = _deeplift_tensors(model)
    feed = {x_ph: x, x0_ph: reference(model, x, params), targets_ph: np.asarray(targets, np.int64)}
    return model.run(contributions, feed)


def reason_unsupported(model):
    """None if every layer's type is one the rescale rule covers, else the ones it does not."""
    unknown = sorted(canonize.layer_types(model) - set(SUPPORTED_LAYERS))
    if unknown:
        return "the rescale rule here covers linear, elementwise and max-pooling layers, not %s" % ", ".join(unknown)
    return None
