"""LRP in iNNvestigate 2.1.2 for MobileNets and EfficientNets: the layers its model check refuses (issue 17).

iNNvestigate's LRP refused every model with a DepthwiseConv2D or a Keras ReLU layer: its "only tested
for convolutional neural networks" check is a warning, but 2.1.2 raises after any warning. Here the
LRP analyzers are built without iNNvestigate's checks, and this module decides instead, for each
layer that receives relevance (the native backend's rules, lrp/propagation.py and lrp/gating.py):
- DepthwiseConv2D: the analyzer's own rule for kernel layers (epsilon, alpha-beta, z+, w^2, flat:
  iNNvestigate's rule classes copy any kernel layer with modified weights and take its gradient, and a
  depthwise kernel's entries are its linear map's entries, so w+, w-, w^2 are the map's);
- a Keras ReLU layer (ReLU(), ReLU(6.)): relevance unchanged, as through an Activation layer (iNNvestigate
  sent it through the gradient, which drops the relevance of every unit ReLU(6.) clips);
- SiLU / swish: relevance unchanged (the identity rule), in lrp.z, lrp.epsilon and the sequential
  presets, as the native backend; the other LRP methods refuse it;
- a Multiply of a signal and a sigmoid gate (squeeze-excite): all relevance to the signal, none to
  the gate (signal-take-all, Arras et al. 2017); the gate's branch then receives no relevance and
  needs no rule; a product of two signals is refused;
- in-model preprocessing (Rescaling, Normalization) and the layers that are the identity at inference:
  relevance unchanged;
- every other layer: iNNvestigate's own model checks, on the layers that receive relevance.
"""

from tb_xai_plugin import model_info

SILU_METHODS = (
    "lrp.z", "lrp.epsilon", "lrp.sequential_preset_a", "lrp.sequential_preset_b",
    "lrp.sequential_preset_a_flat", "lrp.sequential_preset_b_flat",
)
LRP_METHODS = SILU_METHODS + (
    "lrp.w_square", "lrp.flat", "lrp.alpha_beta", "lrp.alpha_2_beta_1", "lrp.alpha_1_beta_0", "lrp.z_plus", "lrp.z_plus_fast",
)
SELF_GATED_ACTIVATIONS = ("swish", "silu")
GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")
PASSING_ACTIVATIONS = ("relu", "relu6", "linear")
PASS_LAYERS = ("Rescaling", "Normalization") + model_info.INFERENCE_IDENTITY_TYPES


def activation_name(layer):
    """'relu', 'relu6', 'linear', 'swish', ... for a layer's activation (a ReLU layer's own), None if it has none."""
    if type(layer).__name__ == "ReLU":
        if float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
            return "leaky or thresholded relu"
        return "relu" if layer.max_value is None else ("relu6" if float(layer.max_value) == 6 else "clipped relu")
    activation = getattr(layer, "activation", None)
    return None if activation is None else getattr(activation, "__name__", type(activation).__name__)


def producer(tensor):
    """The layer that made `tensor`, or None for a model input."""
    history = getattr(tensor, "_keras_history", None)
    return None if history is None or type(history.layer).__name__ == "InputLayer" else history.layer


def node_inputs(tensor):
    """The input tensors of the layer call that made `tensor` ([] for a model input)."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return []
    inputs = history.layer._inbound_nodes[history.node_index].input_tensors
    return list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]


def is_gate(tensor):
    """True for a value made by a sigmoid or hard sigmoid (an Activation layer or a kernel layer's own), a Reshape between allowed."""
    layer = producer(tensor)
    if layer is None:
        return False
    if type(layer).__name__ == "Reshape":
        return is_gate(node_inputs(tensor)[0])
    return activation_name(layer) in GATE_ACTIVATIONS


def gate_position(layer, inputs):
    """The position of the gate among a Multiply's two inputs when exactly one is a gate, else None."""
    if type(layer).__name__ != "Multiply" or len(inputs) != 2:
        return None
    gates = [is_gate(x) for x in inputs]
    return gates.index(True) if gates.count(True) == 1 else None


def relevance_calls(model):
    """[(layer, its input tensors)] of the layer calls that receive relevance (from the output back, never into a gate), in layer order."""
    calls, seen, stack = [], set(), list(model.outputs)
    while stack:
        tensor = stack.pop()
        layer = producer(tensor)
        if layer is None or id(tensor) in seen:
            continue
        seen.add(id(tensor))
        inputs = node_inputs(tensor)
        calls.append((layer, inputs))
        gate = gate_position(layer, inputs)
        stack.extend(x for i, x in enumerate(inputs) if i != gate)
    order = {id(layer): i for i, layer in enumerate(model.layers)}
    return sorted(calls, key=lambda call: order.get(id(call[0]), -1))


def verdict(layer, inputs, method_id):
    """'' if this module has the layer's rule, a reason if it refuses the layer, None to leave it to iNNvestigate's checks."""
    name, activation = type(layer).__name__, activation_name(layer)
    if activation in SELF_GATED_ACTIVATIONS:
        if method_id not in SILU_METHODS:
            return "activation %s has no rule here (SiLU's identity rule comes with lrp.z, lrp.epsilon and the sequential presets)" % activation
        return ""
    if name == "ReLU":
        return "" if activation in PASSING_ACTIVATIONS else "a %s has no rule here" % activation
    if name == "Multiply":
        return "" if gate_position(layer, inputs) is not None else "a product of two signals (no sigmoid gate) has no rule here"
    if (name == "DepthwiseConv2D" and activation in PASSING_ACTIVATIONS) or name in PASS_LAYERS:
        return ""
    return None


def reason_unusable(analyzer, method_id):
    """None if LRP method `method_id` explains every layer of the analyzer's model that receives relevance, else why not."""
    verdicts = [(layer, verdict(layer, inputs, method_id)) for layer, inputs in relevance_calls(analyzer._model)]
    for layer, why in verdicts:
        if why:
            return "%s cannot explain layer %r (%s): %s" % (method_id, layer.name, type(layer).__name__, why)
    left = [layer for layer, why in verdicts if why is None]
    for check in analyzer._model_checks:
        hit = sorted({layer.name: type(layer).__name__ for layer in left if check["check"](layer)}.items())
        if hit:
            named = ", ".join("%r (%s)" % pair for pair in hit[:3]) + (" and %d more" % (len(hit) - 3) if len(hit) > 3 else "")
            return "iNNvestigate's %s does not support layer %s: %s" % (method_id, named, check["message"].split("\n")[0])
    return None


def add_mappings(analyzer):
    """Give the analyzer this module's reverse mappings (ahead of its own): pass-through layers and gated products."""
    analyzer._add_conditional_reverse_mapping(passes_relevance, lambda xs, ys, rs, state: rs, priority=1, name="lrp_pass_relevance")
    analyzer._add_conditional_reverse_mapping(
        lambda layer: type(layer).__name__ == "Multiply", signal_take_all(analyzer), priority=1, name="lrp_signal_take_all"
    )


def passes_relevance(layer):
    """True for the layers whose relevance passes unchanged: ReLU layers, SiLU activations, preprocessing, inference identities."""
    name = type(layer).__name__
    return name == "ReLU" or name in PASS_LAYERS or (name == "Activation" and activation_name(layer) in SELF_GATED_ACTIVATIONS)


def signal_take_all(analyzer):
    """A Multiply's reverse mapping: [R, 0] to (signal, gate); a product without one gate goes by iNNvestigate's gradient."""
    import tensorflow as tf

    zeros = tf.keras.layers.Lambda(tf.zeros_like)

    def mapping(xs, ys, rs, state):
        """R_signal = R, R_gate = 0 (Arras et al. 2017)."""
        gate = gate_position(state["layer"], xs)
        if gate is None:
            return analyzer._gradient_reverse_mapping(xs, ys, rs, state)
        return [zeros(x) if i == gate else rs[0] for i, x in enumerate(xs)]

    return mapping
