"""The picker's truth: which methods apply to one checkpoint, and why not, from the loaded model's real graph.

POST `applicability` has a worker load the checkpoint and run engine.applicable_methods on it (worker op
"applicable", the same check `attribute` makes before computing); the answer is cached per checkpoint
content and engine versions (service.model_key), in memory and on disk. GET `layers` only reads: it gives
that cached answer when there is one, else the manifest's (xai_plugin.method_applicability), where only
the record's own rule can refuse and everything else is "ok": null, "unknown until computed", never "ok"
by default. A checkpoint the worker cannot load refuses every method with the loader's reason (not
cached: the file may be repaired).
"""

import concurrent.futures
import json

import numpy as np

from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.plugin.cache import key_digest
from tb_xai_plugin.plugin.service import checkpoint_message, model_key

WAIT_S = 300.0  # a load of a large model in a busy worker


class Unanswered(XaiError):
    """No worker answered (it died, the pool is overloaded or shutting down, or it took too long): retry."""

    http_status = 503


def cache_key(ckpt):
    """The cache key of one checkpoint's applicability answer."""
    return ("applicable", model_key(ckpt))


def encode(methods):
    """{id: {"ok", "reason"}} as a cache value: its UTF-8 JSON in a uint8 array (the cache stores arrays)."""
    return {"json": np.frombuffer(json.dumps(methods, sort_keys=True).encode("utf-8"), np.uint8)}


def decode(value):
    """The {id: {"ok", "reason"}} a cache value holds (see encode)."""
    return json.loads(bytes(np.asarray(value["json"], np.uint8)).decode("utf-8"))


def cached_methods(cache, ckpt):
    """The worker's cached answer for the checkpoint, or None when no worker has answered for it yet."""
    found = cache.get(cache_key(ckpt))
    return None if found is None else decode(found)


def refused_everywhere(methods, reason):
    """Every method of `methods` (ids) refused with `reason`: the checkpoint cannot be loaded."""
    return {method: {"ok": False, "reason": reason} for method in methods}


def methods_of(cache, pool, ckpt, method_ids, wait_s=WAIT_S):
    """{method id: {"ok": bool, "reason"}} computed by a worker on the loaded checkpoint (cached); Unanswered if none answers."""
    found = cached_methods(cache, ckpt)
    if found is not None:
        return found
    key = cache_key(ckpt)
    message = {"op": "applicable", "checkpoint": checkpoint_message(ckpt)}

    def store(result):
        cache.put(key, encode(result["methods"]))

    def cached():
        methods = cached_methods(cache, ckpt)
        return None if methods is None else {"methods": methods}

    try:
        result = pool.submit(key_digest(key), message, on_result=store, cached=cached).result(timeout=wait_s)
    except concurrent.futures.TimeoutError as e:
        raise Unanswered("no worker answered within %d s; retry" % wait_s) from e
    except XaiError as e:
        if getattr(e, "http_status", 400) >= 500 or getattr(e, "http_status", 400) == 409:
            raise Unanswered("no worker answered (%s); retry" % e) from e
        return refused_everywhere(method_ids, "this checkpoint cannot be loaded: %s" % e)
    return result["methods"]
