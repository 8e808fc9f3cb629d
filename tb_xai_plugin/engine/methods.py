"""Every attribution method's record, defined once for all backends (registry.Method), in the picker's order.

Pure Python. Which backend computes a method, and whether it can for a given model, is in engine.backends.
"""

from tb_xai_plugin.engine import layers
from tb_xai_plugin.engine.registry import Method, Param, register

POSTPROCESS = Param("postprocess", "choice", "abs", "Postprocess", choices=("none", "abs", "square"))
LRP_PAPER = "Bach et al. 2015, https://doi.org/10.1371/journal.pone.0130140"
# The sliding window's controls, read by perturbation.occlusion.window_and_stride (prediction difference shares both).
WINDOW_PARAMS = (
    Param("window", "int", 0, "Window (pixels; 0 = 1/8 of the image side)", min=0, max=4096),
    Param("stride", "int", 0, "Stride (pixels; 0 = half the window)", min=0, max=4096),
)
FILL = Param("fill", "choice", "mean", "Removed features become", choices=("mean", "zero", "blur"))
SCORE = Param("score", "choice", "probability", "Score", choices=("probability", "logit"))
SEGMENTATION = Param("segmentation", "choice", "slic", "Features", choices=("slic", "grid"))
SEGMENTS = Param("segments", "int", 25, "Superpixels (slic) or patches (grid), about", min=2, max=1024)
COMPACTNESS = Param("compactness", "float", 1.0, "SLIC compactness (image scaled to [0, 1]; higher: squarer)", min=0.001, max=1000.0)
ESTIMATOR = Param(
    "estimator", "choice", "relu", "Pattern estimator (relu: two-component a+ on ReLU units)", choices=("relu", "linear")
)
FIT_NOTE = "; the server fits the patterns on the request's sample set (up to 2,000 samples)"


def _simple(method_id, label, family, description, params=(), signed=True, version=1):
    """Register a method that takes no layer and explains the logits."""
    return register(Method(id=method_id, label=label, family=family, description=description, params=tuple(params),
                           signed=signed, version=version))


register(
    Method(
        id="activation",
        label="Activation map",
        family="activation",
        description="What the chosen layer (mean over channels) or one channel responds to, upsampled "
        "to the image; the target class is ignored.",
        signed=True,  # layers without a ReLU (convolutions before batch norm, ...) can be negative
        takes_layer=True,
        takes_neuron=True,
        needs_logits=False,
        applies=layers.reason_no_spatial_layer("An activation map"),
    )
)
register(
    Method(
        id="grad_cam",
        label="Grad-CAM",
        family="cam",
        description="Where the chosen layer's features raise the target logit: feature maps weighted "
        "by their mean gradient, rectified, upsampled (Selvaraju et al. 2017).",
        signed=False,
        takes_layer=True,
        applies=layers.reason_no_spatial_layer("Grad-CAM"),
    )
)
register(
    Method(
        id="guided_grad_cam",
        label="Guided Grad-CAM",
        family="cam",
        description="Guided backprop times the upsampled Grad-CAM: fine detail inside the region that "
        "raises the target logit (Selvaraju et al. 2017); non-ReLU activations pass plain gradients.",
        signed=True,
        takes_layer=True,
        applies=layers.reason_no_spatial_layer("Guided Grad-CAM"),
    )
)
register(
    Method(
        id="deeplift",
        label="DeepLIFT (rescale)",
        family="gradient",
        description="Contributions of x - x0 to the target logit's change, through each nonlinearity's "
        "secant slope (Shrikumar et al. 2017, arXiv:1704.02685); sums to f(x) - f(x0).",
        params=(
            Param("reference", "choice", "zero", "Reference x0", choices=("zero", "black", "blur", "image_mean")),
            Param("blur_sigma", "float", 4.0, "Blur sigma (pixels, reference 'blur')", min=0.1, max=100.0),
        ),
        signed=True,
    )
)
_simple("gradient", "Gradient (saliency)", "gradient", "d logit / d input (Simonyan et al. 2013, arXiv:1312.6034)", [POSTPROCESS])
register(
    Method(
        id="smoothgrad",
        label="SmoothGrad",
        family="gradient",
        description="Gradient averaged over noisy copies of the image (Smilkov et al. 2017, arXiv:1706.03825)",
        params=(
            Param("noise_scale", "float", 0.1, "Noise (fraction of value range)", min=0.0, max=1.0),
            Param("augment_by_n", "int", 16, "Samples", min=1, max=256),
            POSTPROCESS,
        ),
        sampling=True,
    )
)
# Version 2: the backward pass starts from 1 (it started from the logit's value).
_simple("deconvnet", "Deconvnet", "gradient", "Backward pass with ReLUs on the gradient (Zeiler & Fergus 2014, arXiv:1311.2901)",
        version=2)
_simple(
    "guided_backprop", "Guided Backprop", "gradient",
    "Gradient with ReLUs passing only positive gradient (Springenberg et al. 2014, arXiv:1412.6806)", version=2,
)
_simple("input_t_gradient", "Input x Gradient", "gradient", "x * d logit / d x (Shrikumar et al. 2016, arXiv:1605.01713)")
register(
    Method(
        id="integrated_gradients",
        label="Integrated Gradients",
        family="gradient",
        description="(x - x0) * mean gradient on the path from x0 to x (Sundararajan et al. 2017, arXiv:1703.01365)",
        params=(
            Param("steps", "int", 64, "Steps", min=1, max=1024),
            Param("reference", "choice", "black", "Baseline x0", choices=("black", "zero")),
        ),
    )
)
_simple("lrp.z", "LRP-z", "lrp", "R_i = sum_j z_ij / z_j R_j (%s)" % LRP_PAPER)
_simple(
    "lrp.epsilon", "LRP-epsilon", "lrp", "R_i = sum_j z_ij / (z_j + eps sign z_j) R_j (%s)" % LRP_PAPER,
    [Param("epsilon", "float", 1e-7, "Epsilon", min=1e-9, max=100.0)],
)
_simple("lrp.w_square", "LRP-w^2", "lrp", "R_i = sum_j w_ij^2 / sum_i w_ij^2 R_j (Montavon et al. 2017)")
_simple("lrp.flat", "LRP-flat", "lrp", "R_i = sum_j 1 / sum_i 1 R_j: relevance spread evenly over the inputs")
_simple(
    "lrp.alpha_beta", "LRP-alpha-beta", "lrp",
    "R_i = sum_j (alpha z+_ij / z+_j - beta z-_ij / z-_j) R_j, alpha - beta = 1 (%s)" % LRP_PAPER,
    [
        Param("alpha", "float", 1.0, "Alpha", min=1.0, max=10.0),
        Param("beta", "float", 0.0, "Beta", min=0.0, max=9.0),
    ],
)
_simple("lrp.alpha_2_beta_1", "LRP-alpha2-beta1", "lrp", "LRP-alpha-beta with alpha=2, beta=1 (%s)" % LRP_PAPER)
_simple("lrp.alpha_1_beta_0", "LRP-alpha1-beta0", "lrp", "LRP-alpha-beta with alpha=1, beta=0 (%s)" % LRP_PAPER, signed=False)
_simple("lrp.z_plus", "LRP-z+", "lrp", "R_i = sum_j z+_ij / z+_j R_j, positive weights only (Montavon et al. 2017)", signed=False)
_simple("lrp.z_plus_fast", "LRP-z+ (fast)", "lrp", "LRP-z+ for inputs >= 0, without the bias (Montavon et al. 2017)", signed=False)
_simple(
    "lrp.sequential_preset_a", "LRP preset A", "lrp",
    "Dense layers LRP-epsilon, conv layers LRP-alpha1-beta0 (Kohlbrenner et al. 2020, arXiv:1910.09840)",
)
_simple(
    "lrp.sequential_preset_b", "LRP preset B", "lrp",
    "Dense layers LRP-epsilon, conv layers LRP-alpha2-beta1 (Kohlbrenner et al. 2020, arXiv:1910.09840)",
)
_simple("lrp.sequential_preset_a_flat", "LRP preset A-flat", "lrp", "Preset A with the flat rule at the input layer (Kohlbrenner et al. 2020)")
_simple("lrp.sequential_preset_b_flat", "LRP preset B-flat", "lrp", "Preset B with the flat rule at the input layer (Kohlbrenner et al. 2020)")
_simple(
    "deep_taylor", "Deep Taylor", "deeptaylor",
    "Relevance by Taylor expansion at root points, z+ rule, inputs >= 0 (Montavon et al. 2017, arXiv:1512.02479)",
    signed=False,
)
_simple(
    "deep_taylor.bounded", "Deep Taylor (bounded)", "deeptaylor",
    "Deep Taylor with the z^B rule for inputs in [low, high], given in stored-image units (Montavon et al. 2017)",
    [
        Param("low", "float", 0.0, "Input low (stored units)", min=-1e6, max=1e6),
        Param("high", "float", 255.0, "Input high (stored units)", min=-1e6, max=1e6),
    ],
    signed=False,
)
register(
    Method(
        id="lime",
        label="LIME",
        family="perturbation",
        description="Ridge fit of the target's score on random on/off superpixel masks, kernel-weighted "
        "by closeness to the whole image (Ribeiro et al. 2016, arXiv:1602.04938).",
        params=(
            Param("samples", "int", 200, "Samples", min=2, max=20000),
            SEGMENTATION,
            SEGMENTS,
            COMPACTNESS,
            FILL,
            Param("kernel_width", "float", 0.25, "Kernel width (cosine distance)", min=0.01, max=10.0),
            Param("ridge", "float", 1.0, "Ridge penalty", min=0.0, max=1e6),
            SCORE,
        ),
        signed=True,
        needs_logits=False,
        sampling=True,
    )
)
register(
    Method(
        id="occlusion",
        label="Occlusion",
        family="perturbation",
        description="How much the target's score drops when a sliding square of the image is greyed "
        "out (Zeiler & Fergus 2014); one forward pass per window position.",
        params=(
            *WINDOW_PARAMS,
            Param("fill", "choice", "mean", "Fill (image mean or zero, in input space)", choices=("mean", "zero")),
            Param("score", "choice", "probability", "Score", choices=("probability", "logit")),
        ),
        signed=True,
        needs_logits=False,
    )
)
register(
    Method(
        id="pattern.net",
        label="PatternNet",
        family="pattern",
        description="The signal of the target in the image: backprojection through patterns "
        "a = cov(x, y) / w^T cov(x, y) (Kindermans et al. 2018, arXiv:1705.05598)" + FIT_NOTE,
        params=(ESTIMATOR,),
        signed=True,
    )
)
register(
    Method(
        id="pattern.attribution",
        label="PatternAttribution",
        family="pattern",
        description="Relevance through weights times patterns, root point x - a w^T x per layer "
        "(Kindermans et al. 2018, arXiv:1705.05598)" + FIT_NOTE,
        params=(ESTIMATOR,),
        signed=True,
    )
)
register(
    Method(
        id="prediction_difference",
        label="Prediction difference",
        family="perturbation",
        description="Weight of evidence of each sliding window: log-odds of the target with the window "
        "against with it resampled from its surroundings (Zintgraf et al. 2017, arXiv:1702.04595).",
        params=(
            *WINDOW_PARAMS,
            Param("samples", "int", 8, "Samples per window", min=1, max=1000),
            Param("sampling", "choice", "conditional", "Sampling", choices=("conditional", "marginal")),
            Param("padding", "int", 2, "Conditioning frame (pixels)", min=0, max=64),
        ),
        signed=True,
        needs_logits=False,
        sampling=True,
    )
)
register(
    Method(
        id="shapley_sampling",
        label="Shapley value sampling",
        family="perturbation",
        description="Each superpixel's mean gain in the target's score when added in random orders "
        "(Castro et al. 2009; Strumbelj & Kononenko 2014); sums to f(x) - f(all filled).",
        params=(
            Param("permutations", "int", 8, "Permutations", min=1, max=2000),
            SEGMENTATION,
            Param("segments", "int", 16, "Superpixels (slic) or patches (grid), about", min=2, max=1024),
            COMPACTNESS,
            FILL,
            SCORE,
        ),
        signed=True,
        needs_logits=False,
        sampling=True,
    )
)
