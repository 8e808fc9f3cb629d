"""LRP rules for one linear layer z = W x + b, as small composable records (after Zennit's design).

A rule is a sum of terms; a term is a sum of parts; a part is the layer's linear map with modified
weights (and bias, or none) applied to a modified input, with a sign. For incoming relevance R:

    z_t  = sum_k sign_k * f'_k(x'_k)                       (the term's modified forward)
    s_t  = R / stabilize_t(z_t)                            (a constant for the gradient)
    R_in = sum_t coefficient_t * sum_k x'_k * grad_{x'_k}( sum(sign_k * f'_k(x'_k) * s_t) )

which is R_in = x * grad_x(sum(f'(x) * stop_gradient(R / stab(f'(x))))) for a one-part rule. Each
rule below states the formula it makes, and matches iNNvestigate 2.1.2's rule of the same name term
for term (including its choices: alpha-beta keeps the bias split by sign in both terms, w^2 and flat
divide by the modified layer applied to ones).
"""

import dataclasses
from typing import Callable, Optional

SAFE_EPS = 1e-7  # iNNvestigate's safe_divide: a zero denominator becomes 1e-7 (Keras' epsilon())


def _keras_ops():
    """keras.ops, imported on first use (this module is imported by the plugin process too)."""
    from keras import ops

    return ops


# Weight (and bias) modifiers: w -> w'.
def identity(w):
    """w."""
    return w


def positive(w):
    """w+ = w * (w > 0)."""
    ops = _keras_ops()
    return w * ops.cast(ops.greater(w, 0), w.dtype)


def negative(w):
    """w- = w * (w < 0)."""
    ops = _keras_ops()
    return w * ops.cast(ops.less(w, 0), w.dtype)


def square(w):
    """w^2."""
    return w * w


def ones(w):
    """1 (same shape)."""
    return _keras_ops().ones_like(w)


# Input modifiers: (x, bounds) -> x'; bounds is (low, high) at this layer's input, or None.
def input_x(x, bounds):
    """x."""
    return x


def input_positive(x, bounds):
    """x+."""
    return positive(x)


def input_negative(x, bounds):
    """x-."""
    return negative(x)


def input_ones(x, bounds):
    """1: the layer's fan-in (w^2, flat)."""
    return ones(x)


def input_low(x, bounds):
    """The lower input bound l, broadcast to x's shape."""
    return _keras_ops().zeros_like(x) + bounds[0]


def input_high(x, bounds):
    """The upper input bound h, broadcast to x's shape."""
    return _keras_ops().zeros_like(x) + bounds[1]


# Stabilizers: z -> a denominator that is never 0.
def safe(z):
    """z + 1e-7 * (z == 0)."""
    ops = _keras_ops()
    return z + SAFE_EPS * ops.cast(ops.equal(z, 0), z.dtype)


def epsilon_stabilizer(epsilon):
    """z -> z + eps * sign(z), with sign(0) = +1."""
    def stabilize(z):
        ops = _keras_ops()
        return z + epsilon * (2 * ops.cast(ops.greater_equal(z, 0), z.dtype) - 1)

    stabilize.epsilon = epsilon
    return stabilize


@dataclasses.dataclass(frozen=True)
class Part:
    """One modified forward f'(x') = op(x', weights(W)) + bias(b) (bias None: dropped), with a sign."""

    weights: Callable = identity
    bias: Optional[Callable] = identity
    inputs: Callable = input_x
    sign: float = 1.0


@dataclasses.dataclass(frozen=True)
class Term:
    """Parts summed into one z, relevance divided by stabilize(z), the result scaled by coefficient."""

    parts: tuple
    stabilize: Callable = safe
    coefficient: float = 1.0


@dataclasses.dataclass(frozen=True)
class Rule:
    """An LRP rule: a name (for refusals and docs), its terms, and whether it needs input bounds."""

    name: str
    terms: tuple
    needs_bounds: bool = False

    def for_nonnegative_inputs(self):
        """The same rule for inputs known to be >= 0: parts on x- dropped (their bias kept in the x+ part)."""
        terms = tuple(t for t in (_without_negative_inputs(t) for t in self.terms) if t is not None)
        return dataclasses.replace(self, terms=terms)

    def relevance(self, step, x, relevance, bounds=None, z=None):
        """R_in for a linear walk step with input x and relevance R at its output (z: its output, if known)."""
        total = None
        for term in self.terms:
            r = term_relevance(step, term, x, relevance, bounds, z if _is_plain(term) else None)
            r = r if term.coefficient == 1 else term.coefficient * r
            total = r if total is None else total + r
        return total


def _without_negative_inputs(term):
    """`term` without its parts on x- (x- = 0 gives them no relevance); their biases join the x+ part; None if none is left."""
    kept = [p for p in term.parts if p.inputs is not input_negative]
    dropped = [p for p in term.parts if p.inputs is input_negative]
    if not dropped:
        return term
    if not kept:
        return None
    biases = [p.bias for p in dropped if p.bias is not None]
    if biases:
        if len(kept) != 1 or kept[0].bias is None:
            return term
        kept[0] = dataclasses.replace(kept[0], bias=_bias_sum((kept[0].bias,) + tuple(biases)))
    return dataclasses.replace(term, parts=tuple(kept))


def _bias_sum(modifiers):
    """b -> the sum of the modifiers applied to b (b+ + b- = b is identity)."""
    if set(modifiers) == {positive, negative} and len(modifiers) == 2:
        return identity
    return lambda b: sum(m(b) for m in modifiers)


def _is_plain(term):
    """Whether the term's z is the layer's own output (one unmodified part: z and epsilon rules)."""
    part = term.parts[0]
    return len(term.parts) == 1 and (part.weights, part.bias, part.inputs, part.sign) == (identity, identity, input_x, 1.0)


def term_relevance(step, term, x, relevance, bounds, known_z=None):
    """sum_k x'_k * grad_{x'_k}(sum(sign_k f'_k(x'_k) * stop_gradient(R / stab(z)))) for one term.

    known_z: the term's z when the forward pass has it already; the recomputed one then feeds only the
    gradient, which needs no forward values, so tf.function prunes the recomputation.
    """
    import tensorflow as tf

    inputs = [part.inputs(x, bounds) for part in term.parts]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        z = None
        for part, xk in zip(term.parts, inputs):
            kernels = [part.weights(k) for k in step.kernels]
            bias = None if part.bias is None or step.bias is None else part.bias(step.bias)
            zk = step.linear(xk, kernels, bias)
            zk = zk if part.sign == 1 else part.sign * zk
            z = zk if z is None else z + zk
    scale = tf.stop_gradient(relevance / term.stabilize(z if known_z is None else known_z))
    grads = tape.gradient(z, inputs, output_gradients=scale)
    total = None
    for xk, g in zip(inputs, grads):
        total = xk * g if total is None else total + xk * g
    return total


def z_rule(bias=True):
    """LRP-z: R_i = sum_j x_i w_ij / z_j R_j, z_j = sum_i x_i w_ij + b_j (Bach et al. 2015)."""
    return Rule("z", (Term((Part(bias=identity if bias else None),)),))


def epsilon_rule(epsilon, bias=True):
    """LRP-epsilon: R_i = sum_j x_i w_ij / (z_j + eps sign z_j) R_j."""
    return Rule("epsilon", (Term((Part(bias=identity if bias else None),), epsilon_stabilizer(epsilon)),))


def w_square_rule():
    """LRP-w^2: R_i = sum_j w_ij^2 / sum_i w_ij^2 R_j (Montavon et al. 2017)."""
    return Rule("w_square", (Term((Part(square, None, input_ones),)),))


def flat_rule():
    """LRP-flat: R_i = sum_j 1 / sum_i 1 R_j (over each output's receptive field)."""
    return Rule("flat", (Term((Part(ones, None, input_ones),)),))


def alpha_beta_rule(alpha, beta, bias=True):
    """LRP-alpha-beta: R = alpha R(x+ W+ + x- W-) - beta R(x+ W- + x- W+), each its own z (iNNvestigate's split)."""
    keep = (lambda sign: sign) if bias else (lambda sign: None)
    activator = Term((Part(positive, keep(positive), input_positive), Part(negative, keep(negative), input_negative)), safe, alpha)
    terms = (activator,)
    if beta:
        inhibitor = Term((Part(negative, keep(negative), input_positive), Part(positive, keep(positive), input_negative)), safe, -beta)
        terms += (inhibitor,)
    return Rule("alpha_beta(%g,%g%s)" % (alpha, beta, "" if bias else ",no bias"), terms)


def alpha_beta_x_rule(alpha, beta):
    """iNNvestigate's AlphaBetaX: a0 R(x+W+) + b1 R(x-W-) - b0 R(x+W-) - b1 R(x-W+), each part its own z, bias by sign."""
    def one(weights, inputs, coefficient):
        return Term((Part(weights, weights, inputs),), safe, coefficient)

    terms = (
        one(positive, input_positive, alpha[0]),
        one(negative, input_negative, beta[1]),
        one(negative, input_positive, -beta[0]),
        one(positive, input_negative, -beta[1]),
    )
    return Rule("alpha_beta_x(%s,%s)" % (alpha, beta), tuple(t for t in terms if t.coefficient != 0))


def z_plus_rule():
    """LRP-z+: alpha-beta with alpha=1, beta=0 and no bias (Montavon et al. 2017)."""
    return dataclasses.replace(alpha_beta_rule(1, 0, bias=False), name="z_plus")


def z_plus_fast_rule():
    """LRP-z+ (fast): R_i = sum_j x_i w+_ij / sum_i x_i w+_ij R_j, for inputs x >= 0."""
    return Rule("z_plus_fast", (Term((Part(positive, None, input_x),)),))


def bounded_rule():
    """LRP-z^B: R_i = sum_j (x_i w_ij - l_i w+_ij - h_i w-_ij) / sum_i (...) R_j, inputs in [l, h] (Montavon et al. 2017)."""
    parts = (Part(identity, None, input_x), Part(positive, None, input_low, -1.0), Part(negative, None, input_high, -1.0))
    return Rule("bounded", (Term(parts),), needs_bounds=True)
