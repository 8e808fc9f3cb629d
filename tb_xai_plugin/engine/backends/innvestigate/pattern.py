"""PatternNet and PatternAttribution: backward passes through patterns learned from data.

Kindermans et al. 2018, "Learning how to explain neural networks: PatternNet and
PatternAttribution", https://arxiv.org/abs/1705.05598 (iNNvestigate 2 dropped both: built here).

For each unit y = w^T x + b of a dense or convolutional layer, the pattern is the direction of the
signal in its input: a = cov(x, y) / (w^T cov(x, y)). The linear estimator takes all samples; the
two-component estimator (S_a+, for units followed by a ReLU) takes only the samples with y > 0.
PatternNet backprojects the target logit y_c with the patterns in place of the weights (signal
s = a y); PatternAttribution with w * a (elementwise), a root point x - a w^T x per layer. ReLUs
gate and max-pools route as in the gradient (by the forward pass).

Fitting set: `fit_patterns(model, images)` fits on the given images (the server can pass a run's
logged samples) and keeps the patterns in model.cache; a compute call with no fitted patterns fits
on the images it explains first and keeps those, so later calls reuse them (maps depend on the
fitting set, not on the batch). Statistics accumulate per image batch within a memory budget.

Networks: a chain of Dense / Conv2D (ReLU or linear activations), ReLU / linear activations,
pooling, flatten, reshape and dropout layers; other layers (batch norm, branches, other
nonlinearities) have no pattern estimator in the paper, and `applies` says so.
"""

import hashlib

import numpy as np

from tb_xai_plugin.engine import batching, pattern_fit
from tb_xai_plugin.engine.attribution import DEFAULT_MEMORY_BUDGET
from tb_xai_plugin.engine.backends.innvestigate import canonize, implements
from tb_xai_plugin.errors import XaiError

# What both backends share (the layer lists, the fitted patterns, the estimator math): engine/pattern_fit.py.
KERNEL_LAYERS, PASS_LAYERS, ACTIVATIONS = pattern_fit.KERNEL_LAYERS, pattern_fit.PASS_LAYERS, pattern_fit.ACTIVATIONS
FIT_KEY, PATCH_EXPANSION, FIT_BYTES_PER_WEIGHT = pattern_fit.FIT_KEY, pattern_fit.PATCH_EXPANSION, pattern_fit.FIT_BYTES_PER_WEIGHT
MAX_FIT_BYTES = pattern_fit.MAX_FIT_BYTES  # read at each check: a test may lower it
uses_relu_estimator, _activation = pattern_fit.uses_relu_estimator, pattern_fit.activation_name


def reason_unsupported(model):
    """None if the model is a chain of layers with pattern estimators, else why not."""
    unknown = sorted(canonize.layer_types(model) - set(KERNEL_LAYERS + PASS_LAYERS))
    if unknown:
        return "patterns are estimated for dense / conv layers with ReLU or linear activations, not %s" % ", ".join(unknown)
    if getattr(model, "keras_model", None) is not None:
        try:
            shapes = [tuple(layer.kernel.shape) for layer in kernel_layers(model)]
        except XaiError as e:
            return str(e)
        return pattern_fit.reason_too_large(shapes, MAX_FIT_BYTES)
    return None


def chain(model):
    """The model's layers in order, each fed by the one before; XaiError for branches or other activations."""
    layers = [layer for layer in model.keras_model.layers if type(layer).__name__ != "InputLayer"]
    previous = model.keras_model.inputs[0]
    for layer in layers:  # the layer's call in this model (other methods may call it again)
        inputs, outputs = canonize.call_tensors(model.keras_model, layer)
        if getattr(inputs, "name", None) != previous.name:
            raise XaiError("patterns need a chain of layers; layer %r takes another input than the layer before" % layer.name)
        activation = _activation(layer)
        if activation not in ACTIVATIONS or (activation == "softmax" and layer is not layers[-1]):
            raise XaiError("layer %r has the activation %r; patterns cover ReLU and linear units" % (layer.name, activation))
        previous = outputs
    return layers


def kernel_layers(model):
    """The Dense / Conv2D layers of the chain."""
    return [layer for layer in chain(model) if type(layer).__name__ in KERNEL_LAYERS]


def _stat_tensors(model):
    """{layer: {estimator: (n [K], sum x [D, K], sum y [K], sum x y [D, K])}}, built once per model."""
    key = ("pattern", "stats")
    if key not in model.cache:
        import tensorflow as tf

        out = {}
        with model.in_graph():
            for layer in kernel_layers(model):
                x = tf.cast(pattern_fit.unit_inputs(layer, canonize.call_tensors(model.keras_model, layer)[0]), tf.float64)  # [M, D]
                kernel = tf.cast(tf.reshape(layer.kernel, [-1, layer.kernel.shape[-1]]), tf.float64)  # [D, K]
                y = x @ kernel  # [M, K]
                if layer.use_bias:
                    y += tf.cast(layer.bias, tf.float64)
                masks = {"linear": tf.ones_like(y), "relu": tf.cast(y > 0, tf.float64)}
                out[layer.name] = {
                    name: (tf.reduce_sum(mask, 0), tf.transpose(x) @ mask, tf.reduce_sum(y * mask, 0), tf.transpose(x) @ (y * mask))
                    for name, mask in masks.items()
                }
        model.cache[key] = out
    return model.cache[key]


def fit_patterns(model, images, progress=None, memory_budget=DEFAULT_MEMORY_BUDGET, preprocessed=False):
    """Fit every kernel layer's patterns on `images` and keep them for `model`; returns FittedPatterns."""
    reason = reason_unsupported(model)
    if reason:
        raise XaiError("PatternNet cannot explain this model: %s" % reason)
    x = np.asarray(images, np.float32) if preprocessed else model.preprocess(images)
    if len(x) == 0:
        raise XaiError("no images to fit patterns on")
    tensors = _stat_tensors(model)
    totals = None
    size = batching.batch_size(model, len(x), memory_budget, expansion=PATCH_EXPANSION)
    for part in batching.batches(len(x), size):
        stats = model.run(tensors, {model.input: x[part]})
        totals = stats if totals is None else pattern_fit.add(totals, stats)
        if progress is not None:
            progress(part.stop, len(x))
    with model.in_graph():
        kernels = {layer.name: layer.get_weights()[0] for layer in kernel_layers(model)}
    fitted = pattern_fit.fitted_from_totals(
        totals, kernels, hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest(), len(x),
        str(model.manifest.get("weights_sha256", "")),
    )  # fmt: skip
    model.cache[FIT_KEY] = fitted
    return fitted


def _kernel_op(layer, inputs, kernel):
    """The layer's linear map (no bias) of `inputs` with `kernel` in place of its own."""
    import tensorflow as tf

    if type(layer).__name__ == "Dense":
        return inputs @ kernel
    strides, dilations = [1, *layer.strides, 1], [1, *layer.dilation_rate, 1]
    return tf.nn.conv2d(inputs, kernel, strides=strides, padding=layer.padding.upper(), dilations=dilations)


class PatternGraph:
    """x -> signal (PatternNet) or relevance (PatternAttribution) for a target, with loadable patterns."""

    def __init__(self, model, kind):
        import tensorflow as tf

        self.model, self.kind = model, kind
        layers = chain(model)
        self.variables, self.relu_estimated, self.loaded = {}, {}, None
        with model.building():
            self.x = tf.compat.v1.placeholder(model.input.dtype, model.input.shape, name="pattern_input")
            self.targets = tf.compat.v1.placeholder(tf.int64, [None], name="pattern_targets")
            h = self.x
            for index, layer in enumerate(layers):
                if type(layer).__name__ in KERNEL_LAYERS:
                    self.relu_estimated[layer.name] = uses_relu_estimator(layers, index, "relu")
                    h = self._kernel_layer(layer, h)
                elif not (layer is layers[-1] and _activation(layer) == "softmax"):
                    h = layer(h)
            target_logit = tf.reduce_sum(h * tf.one_hot(self.targets, tf.shape(h)[1]), axis=1)  # y_c: [N]
            # The backward pass starts from y_c itself: the signal of y_c is a y_c (the paper's s = a y).
            self.output = tf.gradients(target_logit, self.x, grad_ys=tf.stop_gradient(target_logit))[0]

    def _kernel_layer(self, layer, inputs):
        """Forward with the layer's weights, backward through the pattern (or weights * pattern)."""
        import tensorflow as tf

        kernel = layer.kernel
        variable = tf.Variable(tf.zeros(kernel.shape), trainable=False, name=layer.name + "_pattern")
        value = tf.compat.v1.placeholder(variable.dtype, kernel.shape, name=layer.name + "_pattern_value")
        self.variables[layer.name] = (value, variable.assign(value))
        backward = variable if self.kind == "net" else kernel * variable
        through_weights, through_backward = _kernel_op(layer, inputs, kernel), _kernel_op(layer, inputs, backward)
        z = tf.stop_gradient(through_weights - through_backward) + through_backward  # value: w x; gradient: via a
        if layer.use_bias:
            z += layer.bias
        return tf.nn.relu(z) if _activation(layer) == "relu" else z

    def load(self, fitted, estimator):
        """Put the fitted patterns of `estimator` into the graph's pattern variables (one session run)."""
        feed, assigns = {}, []
        for name, (value, assign) in self.variables.items():
            two_component = estimator == "relu" and self.relu_estimated[name]
            feed[value] = (fitted.relu if two_component else fitted.linear)[name].reshape(value.shape)
            assigns.append(assign.op)
        self.model.run(assigns, feed)
        self.loaded = (fitted.fingerprint, estimator)


def _compute(kind, model, x, targets, params, layer, neuron, rng):
    """The signal / relevance maps of x for targets, fitting patterns on x first if none are fitted."""
    if FIT_KEY not in model.cache:
        fit_patterns(model, x, preprocessed=True)
    fitted = model.cache[FIT_KEY]
    graph = model.cache.get_or_build(("pattern", kind), lambda: PatternGraph(model, kind))
    if graph.loaded != (fitted.fingerprint, params["estimator"]):
        graph.load(fitted, params["estimator"])
    return model.run(graph.output, {graph.x: x, graph.targets: np.asarray(targets, np.int64)})


@implements("pattern.net", applies=lambda model: reason_unsupported(model))
def pattern_net(model, x, targets, params, layer, neuron, rng):
    """map = signal estimate s = backprop of y_c with every layer's weights W replaced by its patterns A."""
    return _compute("net", model, x, targets, params, layer, neuron, rng)


@implements("pattern.attribution", applies=lambda model: reason_unsupported(model))
def pattern_attribution(model, x, targets, params, layer, neuron, rng):
    """map = backprop of y_c with every layer's weights W replaced by W * A (elementwise)."""
    return _compute("attribution", model, x, targets, params, layer, neuron, rng)
