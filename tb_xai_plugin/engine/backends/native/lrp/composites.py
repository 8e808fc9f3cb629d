"""Composites: which rule each layer gets, and how the layers without weights pass relevance on.

A composite assigns a rule to each linear step by its family (dense, conv, batch norm) and whether it
is the first layer (its inputs come from the model input through reshapes or in-model preprocessing
only). `COMPOSITES` maps every LRP and Deep Taylor method id of the registry to a factory
params -> Composite; each matches the iNNvestigate 2.1.2 analyzer of that id (docs/engine.md, LRP).
"""

import dataclasses
from typing import Callable, Optional

from tb_xai_plugin.engine.backends.native.lrp import rules, transformer

PRESET_EPSILON = 0.1  # iNNvestigate's LRPSequentialPreset{A,B}: epsilon=1e-1 on dense layers


@dataclasses.dataclass(frozen=True)
class Composite:
    """Rules by layer family, the first layer's override, and the weightless layers' propagation.

    merge: how Add and average pooling pass relevance: "z" (LRP-z over their inputs, iNNvestigate's
        LRP) or "gradient" (copied back through the op's gradient, iNNvestigate's Deep Taylor);
    activation_layers: activations that are layers of their own (Activation, ReLU): "pass" (relevance
        unchanged, LRP) or "gradient" (Deep Taylor); a linear layer's fused activation always passes;
    head: the relevance the target logit starts with: "value" (the logit) or "relu" (max(logit, 0));
    transformer: the stabilizer of the AttnLRP steps (LayerNormalization, attention: lrp/transformer.py),
        None where the composite has no AttnLRP counterpart (those layers are then refused).
    """

    name: str
    dense: rules.Rule
    conv: rules.Rule
    batch_norm: rules.Rule
    first: Optional[rules.Rule] = None
    merge: str = "z"
    activation_layers: str = "pass"
    head: str = "value"
    transformer: Optional[Callable] = None

    def rule(self, step, first):
        """The rule for linear `step` (first: whether it is a first layer)."""
        name = type(step.layer).__name__
        if name == "BatchNormalization":
            return self.batch_norm
        if first and self.first is not None:
            return self.first
        return self.dense if name == "Dense" else self.conv

    @property
    def needs_bounds(self):
        """Whether a rule of this composite needs the input's bounds."""
        return any(r.needs_bounds for r in (self.dense, self.conv, self.batch_norm, self.first) if r is not None)


def uniform(name, rule):
    """Every linear layer, batch norms included, gets `rule` (iNNvestigate's LRPZ, LRPEpsilon, ...); AttnLRP steps its stabilizer if it has one."""
    return Composite(name, rule, rule, rule, transformer=transformer.stabilizer(rule))


def sequential_preset(name, conv, flat_first):
    """Dense: epsilon 0.1; conv: `conv`; batch norm: AlphaBetaX (2,0),(1,0); first layer flat if flat_first; AttnLRP steps epsilon 0.1."""
    return Composite(
        name,
        dense=rules.epsilon_rule(PRESET_EPSILON),
        conv=conv,
        batch_norm=rules.alpha_beta_x_rule((2, 0), (1, 0)),
        first=rules.flat_rule() if flat_first else None,
        transformer=rules.epsilon_stabilizer(PRESET_EPSILON),
    )


def deep_taylor(name, bounded):
    """Every dense and conv layer z+ (bounded: z^B on the first layer); batch norm w^2; Add, pooling, activations by gradient; relu head."""
    return Composite(
        name,
        dense=rules.z_plus_rule(),
        conv=rules.z_plus_rule(),
        batch_norm=rules.w_square_rule(),
        first=rules.bounded_rule() if bounded else None,
        merge="gradient",
        activation_layers="gradient",
        head="relu",
    )


COMPOSITES = {
    "lrp.z": lambda p: uniform("lrp.z", rules.z_rule()),
    "lrp.epsilon": lambda p: uniform("lrp.epsilon", rules.epsilon_rule(p["epsilon"])),
    "lrp.w_square": lambda p: uniform("lrp.w_square", rules.w_square_rule()),
    "lrp.flat": lambda p: uniform("lrp.flat", rules.flat_rule()),
    "lrp.alpha_beta": lambda p: uniform("lrp.alpha_beta", rules.alpha_beta_rule(p["alpha"], p["beta"])),
    "lrp.alpha_2_beta_1": lambda p: uniform("lrp.alpha_2_beta_1", rules.alpha_beta_rule(2, 1)),
    "lrp.alpha_1_beta_0": lambda p: uniform("lrp.alpha_1_beta_0", rules.alpha_beta_rule(1, 0)),
    "lrp.z_plus": lambda p: uniform("lrp.z_plus", rules.z_plus_rule()),
    "lrp.z_plus_fast": lambda p: uniform("lrp.z_plus_fast", rules.z_plus_fast_rule()),
    "lrp.sequential_preset_a": lambda p: sequential_preset("lrp.sequential_preset_a", rules.alpha_beta_rule(1, 0), False),
    "lrp.sequential_preset_b": lambda p: sequential_preset("lrp.sequential_preset_b", rules.alpha_beta_rule(2, 1), False),
    "lrp.sequential_preset_a_flat": lambda p: sequential_preset("lrp.sequential_preset_a_flat", rules.alpha_beta_rule(1, 0), True),
    "lrp.sequential_preset_b_flat": lambda p: sequential_preset("lrp.sequential_preset_b_flat", rules.alpha_beta_rule(2, 1), True),
    "deep_taylor": lambda p: deep_taylor("deep_taylor", False),
    "deep_taylor.bounded": lambda p: deep_taylor("deep_taylor.bounded", True),
}


def composite(method_id, params):
    """The Composite of LRP / Deep Taylor method `method_id` with validated `params`."""
    return COMPOSITES[method_id](params)
