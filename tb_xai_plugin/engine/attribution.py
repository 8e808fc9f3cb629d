"""The one entry point that computes attribution maps: validate, batch, dispatch to the backend, reduce.

attribute(model, method_id, images, ...) -> Attribution(maps [N,H,W], raw [N,H,W,C] | None,
targets [N], scores [N]). Every bad input raises XaiError before anything runs.
Each batch's method gets rng = np.random.default_rng(seed), fresh per batch: a sampling method
that draws one set of random numbers per batch and shares it across the batch's images gives the
same map for an image alone as in any batch (batch == one by one), and the same map for a seed.
"""

import dataclasses
from typing import Optional

import numpy as np

from tb_xai_plugin import model_info
from tb_xai_plugin.engine import backends, batching, layers, predict, registry, targets
from tb_xai_plugin.errors import XaiError

DEFAULT_MEMORY_BUDGET = 256 * 2**20


@dataclasses.dataclass
class Attribution:
    """Maps of one method on N images: one channel-summed map per image, and what they explain."""

    maps: np.ndarray  # float32 [N, H, W], at the input's resolution
    raw: Optional[np.ndarray]  # float32 [N, H, W, C] per input channel, or None (e.g. CAM methods)
    targets: np.ndarray  # int64 [N], the explained class per image
    scores: np.ndarray  # float32 [N], the model's probability of that class


def attribute(
    model,
    method_id,
    images,
    *,
    params=None,
    target=None,
    labels=None,
    layer=None,
    neuron=None,
    seed=0,
    memory_budget=DEFAULT_MEMORY_BUDGET,
    progress=None,
):
    """Attribution of `method_id` on stored images [N,H,W,C] for `target`; see the module docstring."""
    method = registry.get(method_id)
    params = method.validate_params(params)
    layer, neuron = _layer_and_neuron(model, method, layer, neuron)
    _check_int("seed", seed, 0, 2**63 - 1)
    _check_int("memory_budget", memory_budget, 1, None)
    reason = reason_unusable(model, method)
    if reason:
        raise XaiError("%s cannot explain this model: %s" % (method.label, reason))
    compute = backends.implementation(model.backend, method.id).compute
    x = model.preprocess(images)
    if len(x) == 0:
        raise XaiError("no images to explain")
    # Predicted targets need a forward pass first; otherwise the scores come with the maps' own run.
    probs = predict.probabilities(model, x) if targets.check_target(target)["kind"] == "predicted" else None
    explained = targets.resolve_targets(target, len(x), labels, model.num_classes, probs)
    size = batching.batch_size(model, len(x), memory_budget)
    results = []
    for part in batching.batches(len(x), size):
        batch_probs = None if probs is None else probs[part]
        results.append(_one_batch(model, compute, x[part], explained[part], params, layer, neuron, seed, batch_probs))
        if progress is not None:
            progress(part.stop, len(x))
    maps, raws, scores = zip(*results)
    raw = None if any(r is None for r in raws) else np.concatenate(raws)
    return Attribution(np.concatenate(maps), raw, explained, np.concatenate(scores).astype(np.float32))


def _one_batch(model, compute, batch, explained, params, layer, neuron, seed, probs):
    """(maps [n,H,W], raw or None, scores [n]) of one batch; probs [n,K] if known, else from the method's run."""
    with model.probs_of(batch) as probe:
        out = compute(model, batch, explained, params, layer, neuron, np.random.default_rng(seed))
    if probs is None:
        probs = probe["probs"] if probe["probs"] is not None else predict.probabilities(model, batch)
    maps, raw = reduce_to_maps(out, batch.shape)
    return maps, raw, probs[np.arange(len(batch)), explained]


def applicable_methods(model):
    """{method id: {"ok": bool, "reason": str}} for every registered method on this model."""
    registry.describe_methods()  # registers every method
    out = {}
    for method_id, method in registry.METHODS.items():
        try:
            reason = reason_unusable(model, method)
        except Exception as e:  # noqa: BLE001  (a check that fails foretells a compute that fails: say so, never "ok")
            reason = "its applicability check failed on this model: %s: %s" % (type(e).__name__, e)
        out[method_id] = {"ok": not reason, "reason": reason or ""}
    return out


def reason_unusable(model, method):
    """None if `model`'s backend can compute `method` on it, else why not: the record's rule, then the backend's."""
    reason = method.reason_unusable(model) or targets.reason_head_unusable(model, method)
    if reason:
        return reason
    found = backends.implementation(model.backend, method.id)
    if found is None:
        return "the %s backend has no implementation of %s yet (this checkpoint was written by Keras %s)" % (
            model.backend, method.id, (model.manifest.get("versions") or {}).get("keras", "2"))
    return found.applies(model) if found.applies else None


def reduce_to_maps(out, input_shape):
    """A method's output [n,h,w(,C)] -> (maps float32 [n,H,W] summed over channels, raw or None)."""
    out = np.asarray(out, dtype=np.float32)
    n, height, width = input_shape[:3]
    if out.ndim not in (3, 4) or out.shape[0] != n:
        raise RuntimeError("a method returned shape %s for a batch of %d" % (list(out.shape), n))
    raw = out if out.ndim == 4 and out.shape[1:3] == (height, width) else None
    maps = out.sum(axis=-1) if out.ndim == 4 else out
    if maps.shape[1:] != (height, width):
        maps = np.stack([resize_bilinear(m, height, width) for m in maps])
    return maps.astype(np.float32), raw


def resize_bilinear(image, height, width):
    """float32 [h,w] -> [height,width], bilinear with half-pixel centres (as tf.image.resize)."""
    from PIL import Image

    resized = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), mode="F").resize((width, height), Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def _layer_and_neuron(model, method, layer, neuron):
    """The layer (default: model_info.default_layer) and neuron a method takes, validated; None otherwise."""
    if not method.takes_layer:
        return None, None
    if layer is None:
        layer = model_info.default_layer(model.layers)
    elif not isinstance(layer, str) or layer not in {entry["name"] for entry in model.layers}:
        raise XaiError("unknown layer %r; this model has %s" % (layer, ", ".join(e["name"] for e in model.layers)))
    if not method.takes_neuron or neuron is None:
        return layer, None
    if layer is None:
        raise XaiError("a neuron needs a layer, and this model has no layer with a spatial output")
    shape = next(entry["output_shape"] for entry in model.layers if entry["name"] == layer)
    layers.check_neuron(neuron, shape[-1] if shape else 0, layer)
    return layer, int(neuron)


def _check_int(name, value, low, high):
    """XaiError unless value is an integer in [low, high] (high None: unbounded)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low or (high is not None and value > high):
        raise XaiError("%s must be an integer >= %d, not %r" % (name, low, value))
