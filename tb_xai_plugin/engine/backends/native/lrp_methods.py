"""The native backend's LRP rules and presets and Deep Taylor: the registry's ids, computed by native/lrp.

Each model's canonized walk is built once (model.cache); each (method, parameters) gets one
tf.function over a batch of any size (model.function), which also returns the probabilities of its
forward pass for the dispatcher's scores (model.offer_probs: no second forward pass). A model with a layer the method has no rule
for is refused before any compute, naming the layer (applicable_methods shows that reason).
"""

import functools
import json

import numpy as np

from tb_xai_plugin.engine import checkpoint
from tb_xai_plugin.engine.backends.native import implements, lrp
from tb_xai_plugin.errors import XaiError


def prepared_walk(model):
    """The canonized walk of the model's logits (nested models flattened, batch norms folded); cached."""
    return model.cache.get_or_build(("lrp", "walk"), lambda: lrp.prepare(model.logits_model))


def reason_unusable(method_id, model):
    """None if the native `method_id` can explain `model`, else the sentence naming the layer it cannot."""
    def check():
        try:
            return lrp.reason_unusable(prepared_walk(model), method_id)
        except (ValueError, TypeError, AttributeError, KeyError) as e:
            return "%s cannot walk this model: %s" % (method_id, e)

    return model.cache.get_or_build(("lrp", "applies", method_id), check)


def input_bounds(model, low, high):
    """Stored-image bounds [low, high] through the recorded preprocessing: scalars, then per channel through the folded part (tuples [C])."""
    if not low < high:
        raise XaiError("deep_taylor.bounded needs low < high, got low=%g, high=%g" % (low, high))
    stored = np.stack([np.full(model.input_shape, low), np.full(model.input_shape, high)]).astype(np.float32)
    ends = checkpoint.preprocess_array(stored, model.manifest["preprocessing"])
    bounds = float(ends.min()), float(ends.max())
    if model.folded is None:
        return bounds
    mapped = checkpoint.apply_folded(np.array(bounds, np.float32)[:, None], model.folded)  # [2, C]
    return tuple(mapped.min(axis=0).tolist()), tuple(mapped.max(axis=0).tolist())


def rule_params(method_id, params, model):
    """(params for the composite, input bounds or None), validated as the iNNvestigate backend does."""
    if method_id == "lrp.alpha_beta" and abs(params["alpha"] - params["beta"] - 1) > 1e-9:
        raise XaiError("lrp.alpha_beta needs alpha - beta = 1 (conservation), got alpha=%g, beta=%g" % (params["alpha"], params["beta"]))
    if method_id == "deep_taylor.bounded":
        return {}, input_bounds(model, params["low"], params["high"])
    return dict(params), None


def compute(method_id, model, x, targets, params, layer, neuron, rng):
    """R at the input [N,H,W,C] for each image's target logit, by the native LRP walk."""
    import tensorflow as tf

    why = reason_unusable(method_id, model)
    if why:
        raise XaiError(why)
    composite_params, bounds = rule_params(method_id, params, model)
    key = ("lrp", method_id, json.dumps(composite_params, sort_keys=True), bounds)

    def build():
        signature = [model.input_spec(), tf.TensorSpec([None], tf.int32)]
        return lrp.relevance_function(prepared_walk(model), method_id, composite_params, bounds, signature, model.probabilities_from_logits)

    relevance, probs = model.function(key, build)(np.asarray(x, np.float32), np.asarray(targets, np.int32))
    model.offer_probs(x, probs.numpy())
    return relevance.numpy()


for _method_id in lrp.METHOD_IDS:
    implements(_method_id, applies=functools.partial(reason_unusable, _method_id))(functools.partial(compute, _method_id))
