"""Cascading model randomization (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018).

The layers that hold weights are randomized cumulatively from the output layer down; after each stage
every method's maps are recomputed and compared with the trained model's maps by Spearman's rho of
their absolute values (engine.agreement), per sample. A method whose maps stay close to the trained
ones once the top layers are random (mean rho at the first stage >= BADGE_THRESHOLD) does not show what
the model learned: the paper's finding for guided backprop, whose maps hold through the top layers'
randomization and fall only as the first convolutions go (on the demo models: 0.85-0.95 after the top,
0.13-0.35 at the end, where the gradient is at 0.2-0.3 after the top already; docs/trust.md).

Randomization, seeded by (seed, the layer's position counted from the output), so a layer gets the same
weights at every stage and in both backends. Two modes:
    "permute" (default)  each weight array's values shuffled (all entries): the trained weights' scale and
                         signs stay, what was learned goes (Quantus permutes weights too)
    "init"               re-initialized as Keras does: arrays of >= 2 dimensions Glorot-uniform,
                         U(-l, l), l = sqrt(6 / (fan_in + fan_out)), fan_in = shape[-2] * r,
                         fan_out = shape[-1] * r, r = prod(shape[:-2]); 1-D arrays ones for `gamma` and
                         `moving_variance`, zeros otherwise (biases)
Why permute by default: with zero biases a random first layer's ReLUs are exactly off wherever the
input window is zero, so on black-background images (Fashion-MNIST) every gradient map shares the
object's outline and rank correlations stay high for reasons that have nothing to do with the method
(the demo CNN's gradient: 0.47 under "init", 0.27 under "permute"; docs/trust.md).
The model passed in is modified: give it a private copy of the checkpoint.
"""

import math

import numpy as np

from tb_xai_plugin import model_info
from tb_xai_plugin.engine import agreement
from tb_xai_plugin.engine.attribution import attribute
from tb_xai_plugin.errors import XaiError

BADGE_THRESHOLD = 0.5
DEFAULT_MAX_STAGES = 8
ONES = ("gamma", "moving_variance")
MODES = ("permute", "init")
DEFAULT_MODE = "permute"


def weighted_layers(keras_model):
    """The layers holding weights, in the model's order, nested models flattened."""
    out = []
    for layer in keras_model.layers:
        if hasattr(layer, "layers") and layer.weights:
            out.extend(weighted_layers(layer))
        elif layer.weights:
            out.append(layer)
    return out


def stage_plan(count, max_stages):
    """How many layers (from the top) each stage has randomized: ceil(count * (s + 1) / S), S = min(count, max_stages)."""
    stages = min(count, max_stages)
    return [math.ceil(count * (s + 1) / stages) for s in range(stages)]


def random_weights(layer, position, seed, mode=DEFAULT_MODE):
    """New arrays for the layer's weights (see the module docstring), drawn from default_rng([seed, position])."""
    rng = np.random.default_rng([seed, position])
    out = []
    for variable, value in zip(layer.weights, layer.get_weights()):
        shape = np.shape(value)
        if mode == "permute":
            out.append(rng.permutation(np.asarray(value, np.float32).reshape(-1)).reshape(shape))
        elif len(shape) >= 2:
            field = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
            limit = math.sqrt(6.0 / ((shape[-2] + shape[-1]) * field))
            out.append(rng.uniform(-limit, limit, size=shape).astype(np.float32))
        else:
            name = variable.name.split("/")[-1].split(":")[0]
            out.append(np.full(shape, 1.0 if name in ONES else 0.0, dtype=np.float32))
    return out


def randomize(model, layers, positions, seed, mode=DEFAULT_MODE):
    """Set random weights on `layers` (at `positions` from the output) and rebuild what was derived from the old ones."""
    import contextlib

    scope = model.in_graph() if model.backend == "innvestigate" else contextlib.nullcontext()
    with scope:
        for layer, position in zip(layers, positions):
            layer.set_weights(random_weights(layer, position, seed, mode))
    _rebuild(model)


def _rebuild(model):
    """Drop what was built from the old weights (functions, analyzers) and re-make the logits models holding copies of them."""
    model.cache.clear()
    binary = model.head in model_info.BINARY_HEADS
    if model.backend == "native":
        from tb_xai_plugin.engine.backends.native import loading

        build = loading.binary_logits_model if binary else loading.strip_output_activation
        model.logits_model = build(model.keras_model)
    elif binary:
        import tensorflow as tf

        from tb_xai_plugin.engine.backends.innvestigate import loading

        with model.building() as fetches:
            model.logits_model = loading.binary_logits_model(model.keras_model, model.session)
            model.probs = tf.nn.sigmoid(model.logits_model.output)
            fetches.append(model.logits_model.output)
        model._ancestors = None


def maps_for_classes(model, method, images, classes, options):
    """float32 [N, H, W]: the method's maps with sample i explaining class classes[i] (one call per class)."""
    out = None
    for cls in np.unique(classes):
        chosen = np.flatnonzero(classes == cls)
        target = {"kind": "class", "index": int(cls)}
        result = attribute(model, method[0], images[chosen], params=method[1], target=target, **options)
        out = np.zeros((len(images),) + result.maps.shape[1:], np.float32) if out is None else out
        out[chosen] = result.maps
    return out


def cascading_randomization(model, methods, images, *, target=None, labels=None, layer=None, neuron=None, seed=0,
                            max_stages=DEFAULT_MAX_STAGES, mode=DEFAULT_MODE, progress=None):  # fmt: skip
    """{"stages": [lowest layer randomized], "randomized": [count], "methods": [{"correlations": [S, N]} | {"error"}]}."""
    if mode not in MODES:
        raise XaiError("randomization must be one of %s, not %r" % (", ".join(MODES), mode))
    layers = weighted_layers(model.keras_model)
    if not layers:
        raise XaiError("this model has no layer with weights to randomize")
    plan = stage_plan(len(layers), max_stages)
    options = {"layer": layer, "neuron": neuron, "seed": seed}
    total, done = (len(plan) + 1) * len(methods) * len(images), 0
    trained, results = [], []
    for method in methods:
        try:
            found = attribute(model, method[0], images, params=method[1], target=target, labels=labels, **options)
            trained.append((found.maps, found.targets))
            results.append({"correlations": []})
        except XaiError as e:
            trained.append(None)
            results.append({"error": str(e)})
        done += len(images)
        _report(progress, done, total)
    top_down = layers[::-1]
    for s, count in enumerate(plan):
        start = plan[s - 1] if s else 0
        randomize(model, top_down[start:count], range(start, count), seed, mode)
        for method, maps, result in zip(methods, trained, results):
            if maps is not None and "error" not in result:
                _one_stage(model, method, images, maps, options, result)
            done += len(images)
            _report(progress, done, total)
    names = [top_down[count - 1].name for count in plan]
    return {"stages": names, "randomized": plan, "methods": results}


def _one_stage(model, method, images, trained, options, result):
    """Append this stage's rho per sample to result["correlations"], or turn result into {"error"}."""
    try:
        maps = maps_for_classes(model, method, images, trained[1], options)
    except XaiError as e:
        result.pop("correlations")
        result["error"] = "after randomizing: %s" % e
        return
    result["correlations"].append(agreement.rank_correlation(trained[0], maps))


def _report(progress, done, total):
    """Call progress(done, total) when given."""
    if progress is not None:
        progress(done, total)


def badge(mean_top):
    """Whether the mean rho once the top layers are randomized (the first stage) is at least BADGE_THRESHOLD (None: no badge)."""
    return mean_top is not None and bool(np.isfinite(mean_top)) and mean_top >= BADGE_THRESHOLD
