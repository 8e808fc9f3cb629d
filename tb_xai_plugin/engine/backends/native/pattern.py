"""PatternNet and PatternAttribution on the native backend (Keras 3, eager, tf.function + GradientTape).

Kindermans et al. 2018, "Learning how to explain neural networks: PatternNet and
PatternAttribution", https://arxiv.org/abs/1705.05598

The same estimators, fitting set and backward passes as the iNNvestigate backend's pattern module
(engine/backends/innvestigate/pattern.py): for each unit y = w^T x + b of a Dense / Conv2D layer the
pattern is a = cov(x, y) / (w^T cov(x, y)), over all samples (linear estimator) or the samples with
y > 0 (two-component a+, for units followed by a ReLU). Statistics are sums over the fitting set in
float64, computed by one tf.function per batch. The backward pass replays the chain with every
kernel layer computing z = stop_gradient(W x - B x) + B x (+ b): its value is the layer's own, its
gradient goes through B = the patterns A (PatternNet) or W * A (PatternAttribution); the tape starts
from the target logit y_c itself (the paper's signal s = a y). ReLUs gate and max-pools route by
the forward pass. Patterns are arguments of the traced function, so a refit does not retrace it.

`fit_patterns(model, images, progress=None)` and `FIT_KEY` are the interface the worker uses
(worker_main.ensure_patterns): fit on the request's sample set, keep the FittedPatterns in
model.cache[FIT_KEY]; a compute call with nothing fitted fits on the images it explains first.
"""

import hashlib

import numpy as np

from tb_xai_plugin.engine import batching, pattern_fit
from tb_xai_plugin.engine.attribution import DEFAULT_MEMORY_BUDGET
from tb_xai_plugin.engine.backends.native import implements, walk
from tb_xai_plugin.errors import XaiError

# What both backends share (the layer lists, the fitted patterns, the estimator math): engine/pattern_fit.py.
KERNEL_LAYERS, PASS_LAYERS, ACTIVATIONS = pattern_fit.KERNEL_LAYERS, pattern_fit.PASS_LAYERS, pattern_fit.ACTIVATIONS
FIT_KEY, FIT_BYTES_PER_WEIGHT = pattern_fit.FIT_KEY, pattern_fit.FIT_BYTES_PER_WEIGHT
MAX_FIT_BYTES = pattern_fit.MAX_FIT_BYTES  # read at each check: a test may lower it
_activation = pattern_fit.activation_name


def chain(model):
    """The model's layers in order, each fed by the one before; XaiError for branches or other activations."""
    graph = walk.Walk(model.keras_model)  # a Sequential's own calls, not the nodes of its layers' first build
    layers, previous = [], graph.inputs
    for step in graph.steps:
        if step.inputs != previous:
            raise XaiError("patterns need a chain of layers; layer %r takes another input than the layer before" % step.layer.name)
        previous = step.outputs
        if not layers or step.layer is not layers[-1]:  # a Dense / Conv2D and its split-off activation: one layer
            layers.append(step.layer)
    for layer in layers:
        activation = _activation(layer)
        if activation not in ACTIVATIONS or (activation == "softmax" and layer is not layers[-1]):
            raise XaiError("layer %r has the activation %r; patterns cover ReLU and linear units" % (layer.name, activation))
    return layers


def kernel_layers(model):
    """The Dense / Conv2D layers of the chain."""
    return [layer for layer in chain(model) if type(layer).__name__ in KERNEL_LAYERS]


def reason_unsupported(model):
    """None if the model is a chain of layers with pattern estimators, else why not (its leading preprocessing is folded out)."""
    explained = {type(layer).__name__ for layer in model.keras_model.layers}  # a nested model stays refused by name
    explained |= {type(step.layer).__name__ for step in walk.Walk(model.keras_model).steps}
    unknown = sorted(explained - set(KERNEL_LAYERS + PASS_LAYERS))
    if unknown:
        return "patterns are estimated for dense / conv layers with ReLU or linear activations, not %s" % ", ".join(unknown)
    try:
        shapes = [tuple(layer.kernel.shape) for layer in kernel_layers(model)]
    except XaiError as e:
        return str(e)
    return pattern_fit.reason_too_large(shapes, MAX_FIT_BYTES)


def _layer_stats(layer, inputs):
    """{estimator: (n [K], sum x [D, K], sum y [K], sum x y [D, K])} of one kernel layer's units, float64."""
    import tensorflow as tf

    x = tf.cast(pattern_fit.unit_inputs(layer, inputs), tf.float64)  # [M, D]
    kernel = tf.cast(tf.reshape(layer.kernel, [-1, layer.kernel.shape[-1]]), tf.float64)  # [D, K]
    y = x @ kernel  # [M, K]
    if layer.use_bias:
        y += tf.cast(layer.bias, tf.float64)
    masks = {"linear": tf.ones_like(y), "relu": tf.cast(y > 0, tf.float64)}
    return {
        name: (tf.reduce_sum(mask, 0), tf.transpose(x) @ mask, tf.reduce_sum(y * mask, 0), tf.transpose(x) @ (y * mask))
        for name, mask in masks.items()
    }


def _stats_function(model):
    """tf.function x -> {layer name: _layer_stats} over the chain's forward pass."""
    import tensorflow as tf

    layers = chain(model)

    @tf.function(reduce_retracing=True)
    def stats(x):
        out, h = {}, x
        for layer in layers:
            if type(layer).__name__ in KERNEL_LAYERS:
                out[layer.name] = _layer_stats(layer, h)
            h = layer(h)
        return out

    return stats


def fit_patterns(model, images, progress=None, memory_budget=DEFAULT_MEMORY_BUDGET, preprocessed=False):
    """Fit every kernel layer's patterns on `images` and keep them for `model`; returns FittedPatterns."""
    reason = reason_unsupported(model)
    if reason:
        raise XaiError("PatternNet cannot explain this model: %s" % reason)
    x = np.asarray(images, np.float32) if preprocessed else model.preprocess(images)
    if len(x) == 0:
        raise XaiError("no images to fit patterns on")
    stats = model.cache.get_or_build(("pattern", "stats"), lambda: _stats_function(model))
    totals = None
    size = batching.batch_size(model, len(x), memory_budget, expansion=pattern_fit.PATCH_EXPANSION)
    for part in batching.batches(len(x), size):
        batch = _to_numpy(stats(x[part]))
        totals = batch if totals is None else pattern_fit.add(totals, batch)
        if progress is not None:
            progress(part.stop, len(x))
    kernels = {layer.name: np.asarray(layer.kernel) for layer in kernel_layers(model)}
    fitted = pattern_fit.fitted_from_totals(
        totals, kernels, hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest(), len(x),
        str(model.manifest.get("weights_sha256", "")),
    )  # fmt: skip
    model.cache[FIT_KEY] = fitted
    return fitted


def _to_numpy(tree):
    """Nested dicts / tuples of tensors -> the same of numpy arrays."""
    if isinstance(tree, dict):
        return {k: _to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (tuple, list)):
        return tuple(_to_numpy(v) for v in tree)
    return tree.numpy()


def _kernel_op(layer, inputs, kernel):
    """The layer's linear map (no bias) of `inputs` with `kernel` in place of its own."""
    import tensorflow as tf

    if type(layer).__name__ == "Dense":
        return inputs @ kernel
    strides, dilations = [1, *layer.strides, 1], [1, *layer.dilation_rate, 1]
    return tf.nn.conv2d(inputs, kernel, strides=strides, padding=layer.padding.upper(), dilations=dilations)


def _kernel_layer(layer, inputs, backward):
    """Forward with the layer's weights, backward through `backward` (patterns, or weights * patterns)."""
    import tensorflow as tf

    through_weights, through_backward = _kernel_op(layer, inputs, layer.kernel), _kernel_op(layer, inputs, backward)
    z = tf.stop_gradient(through_weights - through_backward) + through_backward  # value: w x; gradient: via backward
    if layer.use_bias:
        z += layer.bias
    return tf.nn.relu(z) if _activation(layer) == "relu" else z


def _backward_function(model, kind):
    """tf.function (x, targets, patterns by layer name) -> signal ('net') or relevance ('attribution') maps."""
    import tensorflow as tf

    layers = chain(model)

    @tf.function(reduce_retracing=True)
    def backward(x, targets, patterns):
        with tf.GradientTape() as tape:
            tape.watch(x)
            h = x
            for layer in layers:
                if type(layer).__name__ in KERNEL_LAYERS:
                    pattern = tf.reshape(patterns[layer.name], layer.kernel.shape)
                    h = _kernel_layer(layer, h, pattern if kind == "net" else layer.kernel * pattern)
                elif not (layer is layers[-1] and _activation(layer) == "softmax"):
                    h = layer(h)
            target_logit = tf.reduce_sum(h * tf.one_hot(targets, tf.shape(h)[1], dtype=h.dtype), axis=1)  # y_c: [N]
        return tape.gradient(target_logit, x, output_gradients=tf.stop_gradient(target_logit))

    return backward


def _patterns_for(model, fitted, estimator):
    """{layer name: [D, K] float32}: a+ for ReLU units under the 'relu' estimator, a otherwise."""
    layers = chain(model)
    return {
        layer.name: (fitted.relu if pattern_fit.uses_relu_estimator(layers, index, estimator) else fitted.linear)[layer.name]
        for index, layer in enumerate(layers)
        if type(layer).__name__ in KERNEL_LAYERS
    }


def _compute(kind, model, x, targets, params):
    """The signal / relevance maps of x for targets, fitting patterns on x first if none are fitted."""
    if FIT_KEY not in model.cache:
        fit_patterns(model, x, preprocessed=True)
    fitted = model.cache[FIT_KEY]
    backward = model.cache.get_or_build(("pattern", kind), lambda: _backward_function(model, kind))
    patterns = _patterns_for(model, fitted, params["estimator"])
    return backward(x, np.asarray(targets, np.int64), patterns).numpy()


@implements("pattern.net", applies=reason_unsupported)
def pattern_net(model, x, targets, params, layer, neuron, rng):
    """map = signal estimate s = backprop of y_c with every layer's weights W replaced by its patterns A."""
    return _compute("net", model, x, targets, params)


@implements("pattern.attribution", applies=reason_unsupported)
def pattern_attribution(model, x, targets, params, layer, neuron, rng):
    """map = backprop of y_c with every layer's weights W replaced by W * A (elementwise)."""
    return _compute("attribution", model, x, targets, params)
