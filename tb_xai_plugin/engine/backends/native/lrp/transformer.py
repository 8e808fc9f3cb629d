"""AttnLRP (Achtibat et al., ICML 2024): LRP through LayerNormalization, softmax attention, GELU and LayerScale.

Each rule maps the relevance R at a step's output to its inputs; stab is the composite's stabilizer
(LRP-z: z + 1e-7 (z == 0); LRP-epsilon: z + eps sign(z)):
- LayerNormalization y = gamma * (x - mean x) / std(x) + beta: the division by std is a constant (the
  identity rule on the normalization), which leaves two linear layers: the affine part and the centering;
- softmax s = softmax(x) (the attention's, or a Softmax layer): R_in = x * (R - s * sum R) (its
  linearization: the bias term of its Taylor expansion absorbs the rest);
- a product of two inputs O = A B (the attention's scores and its weighting of the values): the uniform
  rule, each factor gets half;
- the attention's query, key, value and output projections (EinsumDense): the composite's dense rule;
- GELU and LayerScale (x * gamma): relevance unchanged (the identity rule; LRP-z of a diagonal map).
A MultiHeadAttention step is re-computed op by op in `attention_relevance`.
"""

import dataclasses

from tb_xai_plugin.engine.backends.native.lrp import rules

LAYERS = ("LayerNormalization", "MultiHeadAttention", "Softmax", "LayerScale")
ACTIVATIONS = ("gelu",)
CALL_ARGUMENTS = ("training", "return_attention_scores")  # the attention's arguments that do not change its map


@dataclasses.dataclass(frozen=True)
class EinsumLinear:
    """An EinsumDense layer as a linear walk step for the rules: z = einsum(equation, x, W) + b."""

    layer: object
    kernels: tuple
    bias: object = None

    def linear(self, x, kernels, bias):
        """z = einsum(equation, x, kernels[0]) + bias (bias None: none)."""
        from keras import ops

        z = ops.einsum(self.layer.equation, x, kernels[0])
        return z if bias is None else z + bias

    def forward(self, x):
        """The layer's own output: einsum(equation, x, W) + b."""
        return self.linear(x, self.kernels, self.bias)


def einsum_linear(layer):
    """The linear step of an EinsumDense layer (its kernel and bias)."""
    return EinsumLinear(layer, (layer.kernel,), getattr(layer, "bias", None))


def unsupported(step):
    """Why this transformer step has no AttnLRP rule here ("" if it has one)."""
    name = type(step.layer).__name__
    if name == "LayerNormalization":
        return _layer_norm_unsupported(step.layer)
    if name == "MultiHeadAttention":
        return _attention_unsupported(step)
    if name == "LayerScale" and not hasattr(step.layer, "gamma"):
        return "a LayerScale without a gamma weight"
    return ""


def _layer_norm_unsupported(layer):
    """Why a LayerNormalization is not one this module explains ("" if it is): it must normalize the last axis only."""
    axes = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    rank = len(layer.input.shape)
    if [a % rank for a in axes] != [rank - 1]:
        return "AttnLRP's LayerNormalization rule here normalizes the last axis only, this layer normalizes axes %s" % (list(axes),)
    return ""


def _attention_unsupported(step):
    """Why a MultiHeadAttention call is not plain self- or cross-attention ("" if it is)."""
    from keras.src.layers.attention.multi_head_attention import MultiHeadAttention

    layer = step.layer
    if type(layer)._compute_attention is not MultiHeadAttention._compute_attention:
        return "its attention computation is overridden"
    if getattr(layer, "_use_gate", False) or getattr(layer, "_sliding_window", None) is not None:
        return "gated or sliding-window attention has no rule here"
    node = _node(step)
    if node is None or len(step.inputs) != 2 or len(node.arguments.args) != 2:
        return "attention is explained for calls attention(query, value) only (no key, no mask tensors)"
    extra = {k: v for k, v in node.arguments.kwargs.items() if k not in CALL_ARGUMENTS and v is not None and v is not False}
    if extra or node.arguments.kwargs.get("return_attention_scores"):
        return "attention called with %s has no rule here" % ", ".join(sorted(extra) or ["return_attention_scores"])
    return ""


def _node(step):
    """The Keras node a walk step re-calls (walk._recall's closure; None if the step was not made from one)."""
    code = getattr(step.call, "__code__", None)
    cell = dict(zip(code.co_freevars if code else (), getattr(step.call, "__closure__", None) or ())).get("node")
    return None if cell is None else cell.cell_contents


def backward(step, composite, ins, ys, outs):
    """The relevance at a transformer step's inputs (LAYERS) from the relevance outs at its outputs."""
    name = type(step.layer).__name__
    if name == "LayerNormalization":
        return [layer_norm_relevance(step.layer, ins[0], outs[0], composite.transformer)]
    if name == "Softmax":
        return [softmax_relevance(ins[0], ys[0], outs[0], step.layer.axis)]
    if name == "MultiHeadAttention":
        return attention_relevance(step.layer, composite.dense, composite.transformer, ins, outs[0])
    return outs


def linear_relevance(f, x, relevance, stabilize, z=None):
    """LRP of a linear map z = f(x) (its bias inside f): R_in = x * grad_x(sum(f(x) * R / stab(z)))."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = f(x)
    scale = tf.stop_gradient(relevance / stabilize(y if z is None else z))
    return x * tape.gradient(y, x, output_gradients=scale)


def layer_norm_relevance(layer, x, relevance, stabilize):
    """LayerNorm with std constant: affine y = gamma n + beta, then centering n = (x - mean x) / c, each LRP of a linear map."""
    from keras import ops

    import tensorflow as tf

    inverse = tf.stop_gradient(_inverse_std(layer, x))

    def normalize(v):
        """n = (v - mean v) * inverse (rms scaling: v * inverse), inverse a constant."""
        return (v if layer.rms_scaling else v - ops.mean(v, axis=-1, keepdims=True)) * inverse

    def affine(n):
        """y = gamma * n + beta (what the layer has of them)."""
        y = n * layer.gamma if layer.scale else n
        return y + layer.beta if layer.center and not layer.rms_scaling else y

    n = normalize(x)
    r_normalized = linear_relevance(affine, n, relevance, stabilize)
    return linear_relevance(normalize, x, r_normalized, stabilize, n)


def _inverse_std(layer, x):
    """1 / sqrt(var(x) + eps) over the last axis (rms scaling: 1 / sqrt(mean(x^2) + eps)), as the layer computes it."""
    from keras import ops

    centered = x if layer.rms_scaling else x - ops.mean(x, axis=-1, keepdims=True)
    return ops.rsqrt(ops.mean(centered * centered, axis=-1, keepdims=True) + layer.epsilon)


def softmax_relevance(x, s, relevance, axis):
    """Softmax s = softmax(x) over `axis`: R_in = x * (R - s * sum R) (AttnLRP's softmax rule)."""
    from keras import ops

    axis = tuple(axis) if isinstance(axis, (list, tuple)) else axis
    return x * (relevance - s * ops.sum(relevance, axis=axis, keepdims=True))


def bilinear_relevance(equation, a, b, relevance, stabilize):
    """O = einsum(equation, a, b): the uniform rule, R_a = a * grad_a(sum(O * R / stab(O))) / 2, R_b likewise."""
    import tensorflow as tf
    from keras import ops

    with tf.GradientTape() as tape:
        tape.watch([a, b])
        o = ops.einsum(equation, a, b)
    scale = tf.stop_gradient(relevance / stabilize(o))
    grad_a, grad_b = tape.gradient(o, [a, b], output_gradients=scale)
    return 0.5 * a * grad_a, 0.5 * b * grad_b


def attention_values(layer, query_in, value_in):
    """The attention's values, as MultiHeadAttention computes them: projections, scaled query, scores, softmax weights, context."""
    from keras import ops

    steps = {name: einsum_linear(getattr(layer, "_%s_dense" % name)) for name in ("query", "key", "value", "output")}
    v = {"steps": steps, "query_in": query_in, "value_in": value_in}
    v["query"] = steps["query"].forward(query_in)
    v["key"] = steps["key"].forward(value_in)
    v["value"] = steps["value"].forward(value_in)
    v["scaled"] = v["query"] * ops.cast(layer._inverse_sqrt_key_dim, v["query"].dtype)
    v["scores"] = ops.einsum(layer._dot_product_equation, v["key"], v["scaled"])
    v["weights"] = layer._softmax(v["scores"])
    v["context"] = ops.einsum(layer._combine_equation, v["weights"], v["value"])
    return v


def attention_relevance(layer, dense_rule, stabilize, ins, relevance):
    """[R_query_input, R_value_input] of MultiHeadAttention(query, value): projections by the dense rule, products uniform, softmax by its rule."""
    v = attention_values(layer, *ins)
    steps = v["steps"]
    r_context = dense_rule.relevance(steps["output"], v["context"], relevance)
    r_weights, r_value = bilinear_relevance(layer._combine_equation, v["weights"], v["value"], r_context, stabilize)
    r_scores = softmax_relevance(v["scores"], v["weights"], r_weights, layer._softmax.axis)
    r_key, r_scaled = bilinear_relevance(layer._dot_product_equation, v["key"], v["scaled"], r_scores, stabilize)
    # query * c is diagonal: LRP-z passes its relevance unchanged, so r_scaled is the query's.
    r_query_in = dense_rule.relevance(steps["query"], v["query_in"], r_scaled, None, v["query"])
    r_key_in = dense_rule.relevance(steps["key"], v["value_in"], r_key, None, v["key"])
    r_value_in = dense_rule.relevance(steps["value"], v["value_in"], r_value, None, v["value"])
    return [r_query_in, r_key_in + r_value_in]


def stabilizer(rule):
    """The stabilizer of a one-term rule (LRP-z, LRP-epsilon), used by the AttnLRP steps; None for other rules."""
    if len(rule.terms) != 1 or not rules._is_plain(rule.terms[0]):
        return None
    return rule.terms[0].stabilize
