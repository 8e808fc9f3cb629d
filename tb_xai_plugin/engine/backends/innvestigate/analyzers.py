"""The methods iNNvestigate 2.1.2 implements, registered with their parameter schemas.

Each analyzer is built once per (model, method, parameters) in the model's own graph, with
neuron_selection_mode="index", and cached in model.cache; a map is then one session run of the
analyzer's output tensor (no Keras predict machinery). SmoothGrad draws its noise here, from the
request's seeded generator: iNNvestigate's own draws unseeded graph noise and ignores noise_scale.
Integrated Gradients runs iNNvestigate's gradient at the midpoints of the path: iNNvestigate's
IntegratedGradients averages over linspace(0, 1, steps), both ends included, which biases the sum
by O(1/steps) (1.5% off completeness at 64 steps on a small ReLU net; midpoints: well under 1%).
Deconvnet and guided backprop start their backward pass from 1, as gradients do: iNNvestigate's
start from the explained logit's value (ReverseAnalyzerBase's identity head mapping, which only its
Gradient overrides), so their maps came out scaled by the logit, and with a negative logit its
guided ReLUs let the wrong sign through. LRP keeps the logit's value: it redistributes it.
"""

import functools
import re
import warnings

import numpy as np

from tb_xai_plugin.engine.registry import Method, Param, register
from tb_xai_plugin.errors import XaiError

# Gradient-style backward passes that iNNvestigate starts from the output value instead of 1.
START_FROM_ONE = ("deconvnet", "guided_backprop")
POSTPROCESS = Param("postprocess", "choice", "abs", "Postprocess", choices=("none", "abs", "square"))
LRP_PAPER = "Bach et al. 2015, https://doi.org/10.1371/journal.pone.0130140"


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


def reference_input(model, reference):
    """IG's baseline as a model input [1,H,W,C]: zeros ('zero') or a black image preprocessed ('black')."""
    zeros = np.zeros((1,) + model.input_shape, np.float32)
    return zeros if reference == "zero" else model.preprocess(zeros)


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


def create_checked(method_id, model, kwargs):
    """innvestigate.create_analyzer on the logits model; a refused architecture raises XaiError with the layer types."""
    import innvestigate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return innvestigate.create_analyzer(method_id, model.logits_model, neuron_selection_mode="index", **kwargs)
        except (NotImplementedError, innvestigate.NotAnalyzeableModelException) as e:
            raise XaiError(_refusal(method_id, e, caught)) from e


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

    return analyzer_kwargs(method_id, registry.METHODS[method_id].validate_params({}), model)


def compute_analyzer(method_id, model, x, targets, params, layer, neuron, rng):
    """iNNvestigate's analysis of x for targets: [N,H,W,C]."""
    return cached_analyzer(model, method_id, analyzer_kwargs(method_id, params, model))(x, targets)


def compute_smoothgrad(model, x, targets, params, layer, neuron, rng):
    """mean_k postprocess(grad f_t(x + sigma * z_k)), sigma = noise_scale * (max x - min x) per image."""
    gradient = cached_analyzer(model, "gradient", analyzer_kwargs("gradient", params, model))
    noise = rng.standard_normal((params["augment_by_n"],) + x.shape[1:]).astype(np.float32)
    sigma = params["noise_scale"] * (x.max(axis=(1, 2, 3)) - x.min(axis=(1, 2, 3)))
    total = np.zeros(x.shape, np.float64)
    for z in noise:  # one draw shared by the batch's images: a batch gives each image's map alone
        total += gradient(x + sigma[:, None, None, None] * z, targets)
    return (total / len(noise)).astype(np.float32)


def compute_integrated_gradients(model, x, targets, params, layer, neuron, rng):
    """(x - x0) * mean_k grad f_t(x0 + (k + 1/2) / steps * (x - x0)), k < steps (midpoint rule)."""
    gradient = cached_analyzer(model, "gradient", {"postprocess": None})
    baseline = reference_input(model, params["reference"])
    steps = params["steps"]
    total = np.zeros(x.shape, np.float64)
    for k in range(steps):
        total += gradient(baseline + (k + 0.5) / steps * (x - baseline), targets)
    return ((x - baseline) * total / steps).astype(np.float32)


def _register(method_id, label, family, description, params=(), signed=True):
    """Register iNNvestigate's `method_id` (computed by its analyzer) with a refusal check."""
    compute = functools.partial(compute_analyzer, method_id)
    return register(
        Method(
            id=method_id,
            label=label,
            family=family,
            description=description,
            compute=compute,
            params=tuple(params),
            signed=signed,
            applies=functools.partial(reason_unusable, method_id),
            version=2 if method_id in START_FROM_ONE else 1,  # 2: the backward pass starts from 1
        )
    )


_register(
    "gradient", "Gradient (saliency)", "gradient",
    "d logit / d input (Simonyan et al. 2013, arXiv:1312.6034)", [POSTPROCESS],
)
register(
    Method(
        id="smoothgrad",
        label="SmoothGrad",
        family="gradient",
        description="Gradient averaged over noisy copies of the image (Smilkov et al. 2017, arXiv:1706.03825)",
        compute=compute_smoothgrad,
        params=(
            Param("noise_scale", "float", 0.1, "Noise (fraction of value range)", min=0.0, max=1.0),
            Param("augment_by_n", "int", 16, "Samples", min=1, max=256),
            POSTPROCESS,
        ),
        sampling=True,
        applies=functools.partial(reason_unusable, "gradient"),
    )
)
_register("deconvnet", "Deconvnet", "gradient", "Backward pass with ReLUs on the gradient (Zeiler & Fergus 2014, arXiv:1311.2901)")
_register(
    "guided_backprop", "Guided Backprop", "gradient",
    "Gradient with ReLUs passing only positive gradient (Springenberg et al. 2014, arXiv:1412.6806)",
)
_register("input_t_gradient", "Input x Gradient", "gradient", "x * d logit / d x (Shrikumar et al. 2016, arXiv:1605.01713)")
register(
    Method(
        id="integrated_gradients",
        label="Integrated Gradients",
        family="gradient",
        description="(x - x0) * mean gradient on the path from x0 to x (Sundararajan et al. 2017, arXiv:1703.01365)",
        compute=compute_integrated_gradients,
        params=(
            Param("steps", "int", 64, "Steps", min=1, max=1024),
            Param("reference", "choice", "black", "Baseline x0", choices=("black", "zero")),
        ),
        applies=functools.partial(reason_unusable, "gradient"),
    )
)
_register("lrp.z", "LRP-z", "lrp", "R_i = sum_j z_ij / z_j R_j (%s)" % LRP_PAPER)
_register(
    "lrp.epsilon", "LRP-epsilon", "lrp", "R_i = sum_j z_ij / (z_j + eps sign z_j) R_j (%s)" % LRP_PAPER,
    [Param("epsilon", "float", 1e-7, "Epsilon", min=1e-9, max=100.0)],
)
_register("lrp.w_square", "LRP-w^2", "lrp", "R_i = sum_j w_ij^2 / sum_i w_ij^2 R_j (Montavon et al. 2017)")
_register("lrp.flat", "LRP-flat", "lrp", "R_i = sum_j 1 / sum_i 1 R_j: relevance spread evenly over the inputs")
_register(
    "lrp.alpha_beta", "LRP-alpha-beta", "lrp",
    "R_i = sum_j (alpha z+_ij / z+_j - beta z-_ij / z-_j) R_j, alpha - beta = 1 (%s)" % LRP_PAPER,
    [
        Param("alpha", "float", 1.0, "Alpha", min=1.0, max=10.0),
        Param("beta", "float", 0.0, "Beta", min=0.0, max=9.0),
    ],
)
_register("lrp.alpha_2_beta_1", "LRP-alpha2-beta1", "lrp", "LRP-alpha-beta with alpha=2, beta=1 (%s)" % LRP_PAPER)
_register("lrp.alpha_1_beta_0", "LRP-alpha1-beta0", "lrp", "LRP-alpha-beta with alpha=1, beta=0 (%s)" % LRP_PAPER, signed=False)
_register("lrp.z_plus", "LRP-z+", "lrp", "R_i = sum_j z+_ij / z+_j R_j, positive weights only (Montavon et al. 2017)", signed=False)
_register("lrp.z_plus_fast", "LRP-z+ (fast)", "lrp", "LRP-z+ for inputs >= 0, without the bias (Montavon et al. 2017)", signed=False)
_register(
    "lrp.sequential_preset_a", "LRP preset A", "lrp",
    "Dense layers LRP-epsilon, conv layers LRP-alpha1-beta0 (Kohlbrenner et al. 2020, arXiv:1910.09840)",
)
_register(
    "lrp.sequential_preset_b", "LRP preset B", "lrp",
    "Dense layers LRP-epsilon, conv layers LRP-alpha2-beta1 (Kohlbrenner et al. 2020, arXiv:1910.09840)",
)
_register("lrp.sequential_preset_a_flat", "LRP preset A-flat", "lrp", "Preset A with the flat rule at the input layer (Kohlbrenner et al. 2020)")
_register("lrp.sequential_preset_b_flat", "LRP preset B-flat", "lrp", "Preset B with the flat rule at the input layer (Kohlbrenner et al. 2020)")
_register(
    "deep_taylor", "Deep Taylor", "deeptaylor",
    "Relevance by Taylor expansion at root points, z+ rule, inputs >= 0 (Montavon et al. 2017, arXiv:1512.02479)",
    signed=False,
)
_register(
    "deep_taylor.bounded", "Deep Taylor (bounded)", "deeptaylor",
    "Deep Taylor with the z^B rule for inputs in [low, high], given in stored-image units (Montavon et al. 2017)",
    [
        Param("low", "float", 0.0, "Input low (stored units)", min=-1e6, max=1e6),
        Param("high", "float", 255.0, "Input high (stored units)", min=-1e6, max=1e6),
    ],
    signed=False,
)
