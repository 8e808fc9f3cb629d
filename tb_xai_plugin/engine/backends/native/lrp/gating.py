"""Multiplicative gates in LRP: SiLU / swish, squeeze-excite's Multiply, and a product of two signals.

- SiLU x * sigmoid(x) is a signal times its own gate: the identity rule (relevance unchanged), as
  AttnLRP passes GELU x * Phi(x), in the composites that have AttnLRP's stabilizer;
- a Multiply y = x * g of a signal x and a gate g (`gate_index`): the signal-take-all rule of LRP for
  multiplicative gates (Arras et al. 2017, LSTMs): g is a constant, R_x = R, R_g = 0 (the gate's
  branch gets no relevance, so its layers need no rule);
- a Multiply y = a * b of two signals: AttnLRP's uniform rule, R_a = R_b = (a b / stab(a b)) R / 2,
  where the composite has AttnLRP's stabilizer; refused elsewhere.
"""

SELF_GATED_ACTIVATIONS = ("silu", "swish")
GATE_ACTIVATIONS = ("sigmoid", "hard_sigmoid")
GATE_OPS = ("Sigmoid", "HardSigmoid")  # Keras 3 op nodes keras.ops.sigmoid(x), keras.ops.hard_sigmoid(x)


def is_product(step):
    """True for an elementwise product of two tensors: a Multiply layer or a Keras 3 x * y op node."""
    return step.kind == "layer" and type(step.layer).__name__ == "Multiply" and len(step.inputs) == 2


def is_gate(walk, key):
    """A gate is a value made by a sigmoid or hard-sigmoid: an Activation layer, a Dense/Conv's fused activation, or ops.sigmoid (a Reshape between is allowed)."""
    producer = walk.producer(key)
    if producer is None:
        return False
    if producer.kind == "activation":
        return getattr(producer.fn, "__name__", "") in GATE_ACTIVATIONS
    name = type(producer.layer).__name__
    if producer.kind == "layer" and name == "Reshape":
        return is_gate(walk, producer.inputs[0])
    return producer.kind == "layer" and name in GATE_OPS


def gate_index(walk, step):
    """The position of the gate among a product's two inputs when exactly one is a gate, else None."""
    gates = [is_gate(walk, key) for key in step.inputs]
    return gates.index(True) if gates.count(True) == 1 else None


def gate_indices(walk):
    """{product step: its gate input's position} for every signal-times-gate product of the walk."""
    found = {}
    for step in walk.steps:
        if is_product(step):
            index = gate_index(walk, step)
            if index is not None:
                found[step] = index
    return found


def signal_take_all(outs, gate):
    """[R_signal, R_gate] in input order: all relevance to the signal, None (nothing) to the gate."""
    return [None if i == gate else outs[0] for i in range(2)]


def uniform_product(step, ins, relevance, stabilize):
    """y = a * b: R_a = a * grad_a(sum(y * R / stab(y))) / 2, R_b likewise (each factor half)."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(ins)
        y = step(*ins)[0]
    scale = tf.stop_gradient(relevance / stabilize(y))
    grads = tape.gradient(y, ins, output_gradients=scale)
    return [0.5 * x * g for x, g in zip(ins, grads)]


def reached(walk, gates):
    """The keys of the values that can receive relevance: from the outputs back, never into a gate."""
    found = set(walk.outputs)
    for step in reversed(walk.steps):
        if not any(k in found for k in step.outputs):
            continue
        found.update(k for i, k in enumerate(step.inputs) if gates.get(step) != i)
    return found
