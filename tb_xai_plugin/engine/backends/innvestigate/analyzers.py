"""The methods this backend computes with iNNvestigate 2.1.2's analyzers (records: engine.methods).

Each analyzer is built once per (model, method, parameters) in the model's own graph, with
neuron_selection_mode="index", and cached in model.cache; a map is then one session run of the
analyzer's output tensor (no Keras predict machinery). SmoothGrad draws its noise here, from the
request's seeded generator: iNNvestigate's own draws unseeded graph noise and ignores noise_scale.
Integrated Gradients runs iNNvestigate's gradient at the midpoints of the path (iNNvestigate's
IntegratedGradients includes both ends, biased by O(1/steps)); both in engine.gradient_averages.
Deconvnet starts its backward pass from 1, as gradients do: iNNvestigate's starts from the
explained logit's value (ReverseAnalyzerBase's identity head mapping, which only its Gradient
overrides), so its maps came out scaled by the logit. Its ReLU rule re-makes each ReLU layer
without its activation, which a Keras ReLU layer (MobileNetV2's ReLU(6.)) cannot be: those layers
get the rule directly (the signal's positive part, as the native backend's Relu / Relu6 override).
Guided backprop is this backend's cam module's (gradient override on the ReLUs, started from 1),
with iNNvestigate's model check. LRP keeps the logit's value: it redistributes it.
"""

import functools
import re
import warnings

import numpy as np

from tb_xai_plugin.engine import gradient_averages
from tb_xai_plugin.engine.backends.innvestigate import batch_norm_fold, implements, lrp_rules
from tb_xai_plugin.errors import XaiError

# Gradient-style backward passes that iNNvestigate starts from the output value instead of 1.
START_FROM_ONE = ("deconvnet",)
POSTPROCESS = {"none": lambda g: g, "abs": np.abs, "square": np.square}
# Methods computed by their own iNNvestigate analyzer; the gradient family shares one plain gradient analyzer.
ANALYZER_METHODS = (
    "deconvnet", "lrp.z", "lrp.epsilon", "lrp.w_square", "lrp.flat",
    "lrp.alpha_beta", "lrp.alpha_2_beta_1", "lrp.alpha_1_beta_0", "lrp.z_plus", "lrp.z_plus_fast",
    "lrp.sequential_preset_a", "lrp.sequential_preset_b", "lrp.sequential_preset_a_flat",
    "lrp.sequential_preset_b_flat", "deep_taylor", "deep_taylor.bounded",
)


def analyzer_kwargs(method_id, params, model):
    """The keyword arguments of iNNvestigate's analyzer `method_id` for validated `params`."""
    if method_id == "gradient":
        return {"postprocess": None if params["postprocess"] == "none" else params["postprocess"]}
    if method_id == "lrp.epsilon":
        return {"epsilon": params["epsilon"]}
    if method_id == "lrp.alpha_beta":
        if abs(params["alpha"] - params["beta"] - 1) > 1e-9:
            raise XaiError("lrp.alpha_beta needs alpha - beta = 1 (conservation), got alpha=%g, beta=%g" % (params["alpha"], params["beta"]))
        return {"alpha": params["alpha"], "beta": params["beta"]}
    if method_id == "deep_taylor.bounded":
        low, high = input_bounds(model, params["low"], params["high"])
        return {"low": low, "high": high}
    return {}


def input_bounds(model, low, high):
    """Stored-image bounds [low, high] mapped through the model's preprocessing to scalar input bounds."""
    if not low < high:
        raise XaiError("deep_taylor.bounded needs low < high, got low=%g, high=%g" % (low, high))
    ends = model.preprocess(np.stack([np.full(model.input_shape, low), np.full(model.input_shape, high)]))
    return float(ends.min()), float(ends.max())


def cached_analyzer(model, method_id, kwargs):
    """The compiled analyzer for (method, kwargs) on `model`, built on first use."""
    key = ("innvestigate", method_id, tuple(sorted(kwargs.items())))
    return model.cache.get_or_build(key, lambda: CompiledAnalyzer(model, method_id, kwargs))


class CompiledAnalyzer:
    """An iNNvestigate analyzer built in the model's graph: its input placeholders and output tensor."""

    def __init__(self, model, method_id, kwargs):
        self.model = model
        with model.building() as fetches:
            try:
                analyzer = create_checked(method_id, model, kwargs)
                if method_id in START_FROM_ONE:
                    start_backward_from_one(analyzer)
                if method_id == "deconvnet":
                    deconvnet_relu_layers(analyzer)
                if method_id in lrp_rules.LRP_METHODS:
                    lrp_rules.add_mappings(analyzer)
                analyzer.create_analyzer_model()
            except (NotImplementedError, ValueError, TypeError, AssertionError) as e:
                raise XaiError("iNNvestigate cannot build %s for this model: %s" % (method_id, e or type(e).__name__)) from e
            self.analyzer = analyzer
            self.image_input, self.index_input = analyzer._analyzer_model.inputs[:2]
            self.output = analyzer._analyzer_model.outputs[0]
            fetches.append(self.output)

    def __call__(self, x, targets):
        """float32 [N,H,W,C]: the analysis of x for output neuron targets[i] of image i."""
        selection = np.stack([np.arange(len(targets)), targets], axis=1).astype(np.int32)
        return self.model.run(self.output, {self.image_input: x, self.index_input: selection})


def start_backward_from_one(analyzer):
    """Make a reverse analyzer's backward pass start from d y / d y = 1 (iNNvestigate Gradient's head)."""
    import tensorflow as tf

    analyzer._head_mapping = tf.ones_like


def deconvnet_relu_layers(analyzer):
    """Deconvnet at a Keras ReLU layer: R -> relu(R), ahead of iNNvestigate's rule (which cannot copy the layer)."""
    import tensorflow as tf
    from innvestigate.backend import apply

    relu = tf.keras.layers.Activation("relu")
    analyzer._add_conditional_reverse_mapping(
        lambda layer: isinstance(layer, tf.keras.layers.ReLU),
        lambda xs, ys, rs, state: apply(relu, rs),
        priority=1,
        name="deconvnet_relu_layer",
    )


def create_checked(method_id, model, kwargs):
    """innvestigate.create_analyzer on the logits model; a refused architecture raises XaiError with the layer types.

    LRP analyzers are checked by lrp_rules instead (iNNvestigate's check refuses DepthwiseConv2D and ReLU layers);
    LRP and Deep Taylor explain the logits model with its BatchNormalizations folded (batch_norm_fold)."""
    import innvestigate

    if method_id in lrp_rules.LRP_METHODS:
        kwargs = dict(kwargs, disable_model_checks=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            analyzer = innvestigate.create_analyzer(method_id, own_graph_of(batch_norm_fold.logits_model_for(method_id, model)), neuron_selection_mode="index", **kwargs)
        except (NotImplementedError, innvestigate.NotAnalyzeableModelException) as e:
            raise XaiError(_refusal(method_id, e, caught)) from e
    reason = lrp_rules.reason_unusable(analyzer, method_id) if method_id in lrp_rules.LRP_METHODS else None
    if reason:
        raise XaiError(reason)
    return analyzer


def own_graph_of(keras_model):
    """The same layers (and weights) re-applied to a new input: a model whose nodes no earlier analyzer has touched.

    One iNNvestigate analyzer's graph reversal leaves state on the model's nodes: on ResNet50 and DenseNet121 the
    next analyzer built on the same nodes failed with "KeyError: <id of the input tensor>" (issue 17).
    """
    import tensorflow as tf

    return tf.keras.models.clone_model(keras_model, clone_function=lambda layer: layer)


def _refusal(method_id, error, caught):
    """A sentence naming the layer types iNNvestigate's model check refused (and its rule), from its text."""
    text = " ".join(str(w.message) for w in caught) + " " + str(error)
    types = sorted(set(re.findall(r"\.(\w+) object at 0x", text)))
    what = ("layers of type %s" % ", ".join(types)) if types else "this architecture"
    rule = str(error).split("\n")[0].strip() if not isinstance(error, NotImplementedError) else ""
    return "iNNvestigate's %s does not support %s%s" % (method_id, what, " (%s)" % rule if rule else "")


def reason_unusable(method_id, model):
    """None if iNNvestigate accepts `model` for `method_id` (its model checks), else why not; cached."""
    def check():
        try:
            with model.in_graph():
                create_checked(method_id, model, _default_kwargs(method_id, model))
        except XaiError as e:
            return str(e)
        return None

    return model.cache.get_or_build(("applies", method_id), check)


def _default_kwargs(method_id, model):
    """Analyzer kwargs for the method's default parameters."""
    from tb_xai_plugin.engine import registry

    return analyzer_kwargs(method_id, registry.get(method_id).validate_params({}), model)


def applies(method_id):
    """An `applies` function: iNNvestigate's model check for `method_id` (reason_unusable)."""
    return functools.partial(reason_unusable, method_id)


def compute_analyzer(method_id, model, x, targets, params, layer, neuron, rng):
    """iNNvestigate's analysis of x for targets: [N,H,W,C]."""
    return cached_analyzer(model, method_id, analyzer_kwargs(method_id, params, model))(x, targets)


@implements("smoothgrad", applies=applies("gradient"))
def compute_smoothgrad(model, x, targets, params, layer, neuron, rng):
    """SmoothGrad over iNNvestigate's gradient (gradient_averages.smoothgrad)."""
    return gradient_averages.smoothgrad(plain_gradient(model, params["postprocess"]), x, targets, params, rng)


@implements("integrated_gradients", applies=applies("gradient"))
def compute_integrated_gradients(model, x, targets, params, layer, neuron, rng):
    """Integrated Gradients over iNNvestigate's plain gradient (gradient_averages.integrated_gradients)."""
    return gradient_averages.integrated_gradients(plain_gradient(model), model, x, targets, params)


def plain_gradient(model, postprocess="none"):
    """(x, targets) -> postprocess(d logit_t / d x) from the model's one plain iNNvestigate gradient analyzer.

    One analyzer serves the whole gradient family: iNNvestigate 2.1.2 cannot build a second reverse
    analyzer on a branched model (ResNet50) once one exists (a KeyError in its reverse_model), and
    abs / square / x * gradient are elementwise, the same in numpy as in its graph.
    """
    analyzer = cached_analyzer(model, "gradient", {"postprocess": None})
    return lambda x, targets: POSTPROCESS[postprocess](analyzer(x, targets))


@implements("gradient", applies=applies("gradient"))
def compute_gradient(model, x, targets, params, layer, neuron, rng):
    """postprocess(d y_t / d x) (Simonyan et al. 2013)."""
    return plain_gradient(model, params["postprocess"])(x, targets)


@implements("input_t_gradient", applies=applies("input_t_gradient"))
def compute_input_t_gradient(model, x, targets, params, layer, neuron, rng):
    """x * d y_t / d x (Shrikumar et al. 2016), as iNNvestigate's InputTimesGradient."""
    return x * plain_gradient(model)(x, targets)

for _method_id in ANALYZER_METHODS:
    implements(_method_id, applies=applies(_method_id))(functools.partial(compute_analyzer, _method_id))
