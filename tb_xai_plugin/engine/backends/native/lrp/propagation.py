"""The backward pass of LRP and Deep Taylor over a canonized walk: one small GradientTape per step.

    relevance(walk, composite, x, targets, bounds=None) -> R at the model input, same shape as x
    relevance_and_logits(...) -> (R, the logits of the same forward pass)
    unsupported(walk, composite) -> None, or a sentence naming the first layer it cannot explain

The target logit's value (Deep Taylor: max(value, 0)) starts the pass; every other output starts at 0.
Each step maps the relevance at its outputs to its inputs; a value read by several steps sums theirs:
- linear steps (dense, convolutions, batch norms made linear): the composite's rule;
- activations (ReLU, ReLU6, linear): relevance unchanged in LRP, whether fused into a linear layer,
  an Activation layer or a ReLU layer (iNNvestigate passes fused and Activation ones, and refuses
  ReLU layers; Zennit passes every activation); Deep Taylor: fused ones unchanged (the layer's rule
  covers them), the others by gradient (iNNvestigate's DeepTaylor);
- Add and average pooling: LRP-z over their inputs (Deep Taylor: by gradient);
- Rescaling and Normalization (in-model preprocessing, elementwise), Keras 3 op nodes x * c, x / c, x + c,
  x - c (preprocess_input inside the model: is_constant_affine), and the layers that are the identity
  at inference (augmentation, noise: model_info.INFERENCE_IDENTITY_TYPES): relevance unchanged (a loaded
  model's leading ones are folded out first, native/folding.py; these rules meet the others);
- max pooling, Flatten, Reshape, Concatenate, padding, cropping, Dropout, x[...]: by gradient (the
  op's vector-Jacobian product with the relevance: routed to the max, moved, split or copied);
- LayerNormalization, MultiHeadAttention, Softmax, LayerScale and GELU: AttnLRP (lrp/transformer.py),
  in the composites that have its stabilizer (LRP-z, LRP-epsilon, the sequential presets);
- SiLU / swish: relevance unchanged in those same composites; a Multiply of a signal and a sigmoid gate
  (squeeze-excite): all relevance to the signal; a Multiply of two signals: each half (lrp/gating.py).
"""

from tb_xai_plugin import model_info
from tb_xai_plugin.engine.backends.native import folding
from tb_xai_plugin.engine.backends.native.walk import LINEAR_CLASSES
from tb_xai_plugin.engine.backends.native.lrp import gating, rules, transformer

MERGE_LAYERS = (
    "Add", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
)
GRADIENT_LAYERS = (
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "Flatten", "Reshape", "Concatenate", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    "Cropping1D", "Cropping2D", "Cropping3D", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
    "GetItem",  # Keras 3's x[:, 0] (a transformer's first-token head): relevance back to the selected entries
)
PASS_LAYERS = ("Rescaling", "Normalization") + model_info.INFERENCE_IDENTITY_TYPES
# Layers a first layer's input may pass through and still be "the input" (iNNvestigate's
# is_input_layer ignores Flatten, Permute, Reshape; in-model preprocessing is elementwise too).
TRANSPARENT_LAYERS = ("Flatten", "Permute", "Reshape") + PASS_LAYERS
ACTIVATIONS = ("relu", "relu6", "linear")


def is_constant_affine(step):
    """True for a Keras 3 op node x * c, x / c, x + c or x - c with one tensor input (preprocess_input, x / 127.5 - 1)."""
    return step.kind == "layer" and len(step.inputs) == 1 and folding.is_affine_op(step.layer)


def relevance(walk, composite, x, targets, bounds=None):
    """R at the model input for logit targets[i] of image i (bounds: (low, high) scalars at the model input)."""
    return relevance_and_logits(walk, composite, x, targets, bounds)[0]


def relevance_and_logits(walk, composite, x, targets, bounds=None):
    """(R at the model input, the logits of the same forward pass); see relevance()."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x, tf.float32)
    values = walk.forward(x)
    logits = values[walk.outputs[0]]
    start = logits if composite.head == "value" else tf.nn.relu(logits)
    mask = tf.one_hot(targets, tf.shape(logits)[-1], dtype=logits.dtype)
    incoming = {walk.outputs[0]: start * mask}
    first = first_layers(walk)
    nonnegative = nonnegative_values(walk)
    layer_bounds = _bounds_at(walk, first, x, bounds) if composite.needs_bounds else {}
    gates = gating.gate_indices(walk)
    for step in reversed(walk.steps):
        outs = [incoming.pop(k, None) for k in step.outputs]
        if all(r is None for r in outs):
            continue
        outs = [tf.zeros_like(values[k]) if r is None else r for k, r in zip(step.outputs, outs)]
        ins = [values[k] for k in step.inputs]
        zs = [values[k] for k in step.outputs]
        known = (step in first, layer_bounds.get(step), step.inputs[0] in nonnegative)
        for key, r in zip(step.inputs, backward(step, composite, ins, zs, outs, *known, gate=gates.get(step))):
            if r is None:  # a gate's input: no relevance
                continue
            incoming[key] = r if key not in incoming else incoming[key] + r
    r = incoming.get(walk.inputs[0])
    return (tf.zeros_like(x) if r is None else r), logits


def backward(step, composite, ins, ys, outs, first, bounds, nonnegative=False, gate=None):
    """The relevance at a step's inputs (values ins) from the relevance outs at its outputs (values ys); gate: a product's gate input."""
    if step.kind == "linear":
        rule = composite.rule(step, first)
        rule = rule.for_nonnegative_inputs() if nonnegative else rule
        return [rule.relevance(step, ins[0], outs[0], bounds, ys[0])]
    name = type(step.layer).__name__
    if step.kind == "activation":
        split_off = type(step.layer).__name__ in LINEAR_CLASSES
        if split_off or composite.activation_layers == "pass":
            return outs
        return gradient(step, ins, outs)
    if name in PASS_LAYERS or is_constant_affine(step):
        return outs
    if gating.is_product(step):
        return gating.signal_take_all(outs, gate) if gate is not None else gating.uniform_product(step, ins, outs[0], composite.transformer)
    if name in transformer.LAYERS:
        return transformer.backward(step, composite, ins, ys, outs)
    if name in MERGE_LAYERS and composite.merge == "z":
        return z_through(step, ins, outs)
    return gradient(step, ins, outs)


def gradient(step, ins, outs):
    """The step's vector-Jacobian product with the relevance: d(sum(y * R)) / d x."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(ins)
        ys = step(*ins)
    grads = tape.gradient(list(ys), ins, output_gradients=outs)
    return [tf.zeros_like(x) if g is None else g for x, g in zip(ins, grads)]


def z_through(step, ins, outs):
    """LRP-z through a weightless linear op y = f(x_1, ...): R_i = x_i * grad_i(sum(y * R / safe(y)))."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(ins)
        ys = step(*ins)
    scaled = [tf.stop_gradient(r / rules.safe(y)) for r, y in zip(outs, ys)]
    grads = tape.gradient(list(ys), ins, output_gradients=scaled)
    return [x * g for x, g in zip(ins, grads)]


# Layers whose output is >= 0 when all their inputs are (they select, move, or average).
SIGN_KEEPING_LAYERS = GRADIENT_LAYERS + MERGE_LAYERS


def nonnegative_values(walk):
    """Keys of the values that are >= 0 by construction: ReLU / ReLU6 outputs and what sign-keeping layers make of them."""
    found = set()
    for step in walk.steps:
        if step.kind == "activation":
            keeps = _activation_name(step) in ("relu", "relu6")
        else:
            keeps = step.kind == "layer" and type(step.layer).__name__ in SIGN_KEEPING_LAYERS and all(k in found for k in step.inputs)
        if keeps:
            found.update(step.outputs)
    return found


def first_layers(walk):
    """The linear steps whose inputs all come from the model inputs through TRANSPARENT_LAYERS only."""
    return {s for s in walk.steps if s.kind == "linear" and all(_from_input(walk, k) for k in s.inputs)}


def _from_input(walk, key):
    """Whether value `key` is a model input, or one reached through transparent layers only."""
    producer = walk.producer(key)
    if producer is None:
        return key in walk.inputs
    if producer.kind != "layer" or not (type(producer.layer).__name__ in TRANSPARENT_LAYERS or is_constant_affine(producer)):
        return False
    return all(_from_input(walk, k) for k in producer.inputs)


def _bounds_at(walk, first, x, bounds):
    """{first step: (low, high) tensors at its input}: the input bounds carried through the transparent layers."""
    import tensorflow as tf

    low, high = bounds
    lows = walk.forward(tf.zeros_like(x[:1]) + low)
    highs = walk.forward(tf.zeros_like(x[:1]) + high)
    return {s: (lows[s.inputs[0]], highs[s.inputs[0]]) for s in first}


def unsupported(walk, composite):
    """None if every step that receives relevance has a rule here, else a sentence naming the first layer that has none."""
    gates = gating.gate_indices(walk)
    live = gating.reached(walk, gates)
    for step in walk.steps:
        if not any(k in live for k in step.outputs):
            continue
        why = _unsupported_step(step, composite, step in gates)
        if why:
            return "%s cannot explain layer %r (%s): %s" % (composite.name, step.layer.name, type(step.layer).__name__, why)
    if len(walk.inputs) != 1 or len(walk.outputs) != 1:
        return "%s explains models with one input and one output" % composite.name
    return None


def _unsupported_step(step, composite, gated=False):
    """Why `step` has no rule in `composite` ("" if it has one; gated: a signal-times-gate product)."""
    name = type(step.layer).__name__
    if step.kind == "linear":
        return ""
    if step.kind == "activation":
        if _activation_name(step) in transformer.ACTIVATIONS:
            return "" if composite.transformer is not None else "activation %s has no rule here" % _activation_name(step) + _attn_hint(composite)
        if _activation_name(step) in gating.SELF_GATED_ACTIVATIONS:
            return "" if composite.transformer is not None else "activation %s has no rule here" % _activation_name(step) + _gated_hint("SiLU's identity rule")
        return "" if _activation_name(step) in ACTIVATIONS else "activation %s is not ReLU, ReLU6 or linear" % _activation_name(step)
    if name in MERGE_LAYERS + GRADIENT_LAYERS + PASS_LAYERS or is_constant_affine(step) or gated:
        return ""
    if gating.is_product(step):
        return "" if composite.transformer is not None else "a product of two signals (no sigmoid gate) has no rule here" + _gated_hint("the half-half product rule")
    if name in transformer.LAYERS:
        return transformer.unsupported(step) if composite.transformer is not None else "no LRP rule for this layer type" + _attn_hint(composite)
    return "no LRP rule for this layer type"


def _attn_hint(composite):
    """Where the AttnLRP rules (GELU, LayerNormalization, attention) are, for a composite that has none."""
    if composite.transformer is not None:
        return ""
    return " (AttnLRP's GELU, LayerNormalization and attention rules come with lrp.z, lrp.epsilon and the sequential presets)"


def _gated_hint(rule):
    """Where `rule` (SiLU's identity, the two-signal product's half-half) is, for a composite that lacks it."""
    return " (%s comes with lrp.z, lrp.epsilon and the sequential presets)" % rule


def _activation_name(step):
    """'relu', 'relu6', 'linear' or another activation's name, for an activation step."""
    if type(step.fn).__name__ == "ReLU":
        layer = step.fn
        if float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
            return "leaky or thresholded ReLU"
        return "relu" if layer.max_value is None else ("relu6" if float(layer.max_value) == 6 else "clipped relu")
    return getattr(step.fn, "__name__", type(step.fn).__name__)
