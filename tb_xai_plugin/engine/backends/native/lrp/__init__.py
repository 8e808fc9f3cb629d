"""LRP and Deep Taylor on Keras 3 without graph surgery: rules, composites, canonizers, one backward walk.

    explain(model, x, targets, method_id, params, bounds=None) -> np.ndarray, R at the input (x's shape), eager
    relevance_function(prepared, method_id, params, bounds=None, input_signature=None, scores=None)
                       -> the same as a tf.function (with scores(logits) of the same pass if given)
    prepare(model) -> the canonized Walk of a Keras 3 logits model (cache it per model)
    reason_unusable(prepared, method_id, params=None) -> None | the sentence naming the layer it cannot explain

Modules: rules (one linear layer's rules), composites (rules per layer, one per method id),
canonizers (BatchNormalization folding), propagation (the walk backwards). See docs/engine.md, LRP.
"""

METHOD_IDS = (
    "lrp.z", "lrp.epsilon", "lrp.w_square", "lrp.flat", "lrp.alpha_beta", "lrp.alpha_2_beta_1",
    "lrp.alpha_1_beta_0", "lrp.z_plus", "lrp.z_plus_fast", "lrp.sequential_preset_a", "lrp.sequential_preset_b",
    "lrp.sequential_preset_a_flat", "lrp.sequential_preset_b_flat", "deep_taylor", "deep_taylor.bounded",
)
DEFAULT_PARAMS = {"epsilon": 1e-7, "alpha": 1.0, "beta": 0.0}


def prepare(model):
    """The canonized walk of a Keras 3 logits model: nested models flattened, batch norms folded."""
    from tb_xai_plugin.engine.backends.native.lrp import canonizers
    from tb_xai_plugin.engine.backends.native.walk import Walk

    return canonizers.canonize(Walk(model))


def reason_unusable(prepared, method_id, params=None):
    """None if `method_id` can explain the prepared walk, else why not (naming the layer)."""
    from tb_xai_plugin.engine.backends.native.lrp import composites, propagation

    return propagation.unsupported(prepared, composites.composite(method_id, dict(DEFAULT_PARAMS, **(params or {}))))


def relevance_function(prepared, method_id, params, bounds=None, input_signature=None, scores=None):
    """f(x, targets) -> R at the input, as a tf.function (one trace per input signature); (R, scores(logits)) if scores is given."""
    import tensorflow as tf

    from tb_xai_plugin.engine.backends.native.lrp import composites, propagation

    composite = composites.composite(method_id, dict(DEFAULT_PARAMS, **(params or {})))

    def run(x, targets):
        r, logits = propagation.relevance_and_logits(prepared, composite, x, targets, bounds)
        return r if scores is None else (r, scores(logits))

    return tf.function(run, input_signature=input_signature, autograph=False, reduce_retracing=True)


def explain(model, x, targets, method_id, params=None, bounds=None):
    """R at the input of Keras 3 logits `model` for logit targets[i] of image x[i] (XaiError if unsupported)."""
    import numpy as np

    from tb_xai_plugin.errors import XaiError

    prepared = prepare(model)
    why = reason_unusable(prepared, method_id, params)
    if why:
        raise XaiError(why)
    from tb_xai_plugin.engine.backends.native.lrp import composites, propagation

    composite = composites.composite(method_id, dict(DEFAULT_PARAMS, **(params or {})))
    return propagation.relevance(prepared, composite, np.asarray(x, np.float32), np.asarray(targets, np.int32), bounds).numpy()
