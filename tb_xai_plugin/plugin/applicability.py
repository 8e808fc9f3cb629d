"""The picker's truth: which methods apply to one checkpoint, and why not, from the loaded model's real graph.

POST `applicability` has a worker load the checkpoint and run engine.applicable_methods on it (worker op
"applicable", the same check `attribute` makes before computing); the answer is cached per checkpoint
content and engine versions (service.model_key), in memory and on disk. GET `layers` only reads: it gives
that cached answer when there is one, else the manifest's (xai_plugin.method_applicability), where only
the record's own rule can refuse and everything else is "ok": null, "unknown until computed", never "ok"
by default. A checkpoint the worker cannot load refuses every method with the loader's reason (not
cached: the file may be repaired).

The same answer names the manifest layers the backend folded into the recorded preprocessing
(`folded_layers`, ModelBase.folded_layer_names: a Rescaling first, its input layer): asked by name they are
refused, so `layer_records` marks them `"folded": true` with that reason, and the default layer is never one.
Before a worker answered, every layer's `folded` is null (unknown).
"""

import concurrent.futures
import json

import numpy as np

from tb_xai_plugin import model_info
from tb_xai_plugin.engine.checkpoint import FOLDED_LAYER
from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.plugin.cache import key_digest
from tb_xai_plugin.plugin.service import checkpoint_message, model_key

WAIT_S = 300.0  # a load of a large model in a busy worker


class Unanswered(XaiError):
    """No worker answered (it died, the pool is overloaded or shutting down, or it took too long): retry."""

    http_status = 503


def cache_key(ckpt):
    """The cache key of one checkpoint's applicability answer ("-layers": answers that also name the folded layers)."""
    return ("applicable-layers", model_key(ckpt))


def encode(answer):
    """{"methods", "folded_layers"} as a cache value: its UTF-8 JSON in a uint8 array (the cache stores arrays)."""
    return {"json": np.frombuffer(json.dumps(answer, sort_keys=True).encode("utf-8"), np.uint8)}


def decode(value):
    """The {"methods", "folded_layers"} a cache value holds (see encode)."""
    return json.loads(bytes(np.asarray(value["json"], np.uint8)).decode("utf-8"))


def cached_answer(cache, ckpt):
    """The worker's cached {"methods", "folded_layers"} for the checkpoint, or None when no worker has answered for it yet."""
    found = cache.get(cache_key(ckpt))
    return None if found is None else decode(found)


def refused_everywhere(methods, reason):
    """Every method of `methods` (ids) refused with `reason`: the checkpoint cannot be loaded."""
    return {method: {"ok": False, "reason": reason} for method in methods}


def layer_records(manifest, folded_layers):
    """{"layers": the manifest's records, each with "folded" (null: unknown) and, when folded, "reason";
    "default_layer": model_info.default_layer over the layers not known to be folded; "folded_layers"}."""
    folded = set(folded_layers or ())
    layers = []
    for layer in manifest["layers"]:
        known = None if folded_layers is None else layer["name"] in folded
        layers.append(dict(layer, folded=known, **({"reason": FOLDED_LAYER % layer["name"]} if known else {})))
    default = model_info.default_layer([layer for layer in layers if not layer["folded"]])
    return {"layers": layers, "default_layer": default, "folded_layers": folded_layers}


def answer_of(cache, pool, ckpt, method_ids, wait_s=WAIT_S):
    """{"methods": {method id: {"ok": bool, "reason"}}, "folded_layers": [name] or None} computed by a worker on the
    loaded checkpoint (cached); folded_layers None when it cannot be loaded; Unanswered if no worker answers."""
    found = cached_answer(cache, ckpt)
    if found is not None:
        return found
    key = cache_key(ckpt)
    message = {"op": "applicable", "checkpoint": checkpoint_message(ckpt)}

    def store(result):
        cache.put(key, encode({"methods": result["methods"], "folded_layers": result["folded_layers"]}))

    def cached():
        return cached_answer(cache, ckpt)

    try:
        result = pool.submit(key_digest(key), message, on_result=store, cached=cached).result(timeout=wait_s)
    except concurrent.futures.TimeoutError as e:
        raise Unanswered("no worker answered within %d s; retry" % wait_s) from e
    except XaiError as e:
        if getattr(e, "http_status", 400) >= 500 or getattr(e, "http_status", 400) == 409:
            raise Unanswered("no worker answered (%s); retry" % e) from e
        reason = "this checkpoint cannot be loaded: %s" % e
        return {"methods": refused_everywhere(method_ids, reason), "folded_layers": None}
    return {"methods": result["methods"], "folded_layers": result["folded_layers"]}
