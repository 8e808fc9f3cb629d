"""The picker's truth: which methods apply to one checkpoint, and why not, from the loaded model's real graph.

A worker loads the checkpoint and runs engine.applicable_methods on it (worker op "applicable"); the
answer is cached per checkpoint content and engine versions (service.model_key), in memory and on
disk, so a checkpoint is asked once. A checkpoint the worker cannot load refuses every method with
the loader's reason (not cached: the file may be repaired). Only when no worker answers (it died, or the pool is shutting down) does the
route fall back to the manifest: what the manifest cannot decide is "ok": null, "unknown until
computed", never "ok" by default (xai_plugin.method_applicability).
"""

import json

import numpy as np

from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.plugin.cache import key_digest
from tb_xai_plugin.plugin.service import checkpoint_message, model_key

WAIT_S = 300.0  # a load of a large model in a busy worker; past this the manifest answers


def cache_key(ckpt):
    """The cache key of one checkpoint's applicability answer."""
    return ("applicable", model_key(ckpt))


def encode(methods):
    """{id: {"ok", "reason"}} as a cache value: its UTF-8 JSON in a uint8 array (the cache stores arrays)."""
    return {"json": np.frombuffer(json.dumps(methods, sort_keys=True).encode("utf-8"), np.uint8)}


def decode(value):
    """The {id: {"ok", "reason"}} a cache value holds (see encode)."""
    return json.loads(bytes(np.asarray(value["json"], np.uint8)).decode("utf-8"))


def refused_everywhere(methods, reason):
    """Every method of `methods` (ids) refused with `reason`: the checkpoint cannot be loaded."""
    return {method: {"ok": False, "reason": reason} for method in methods}


def methods_of(cache, pool, ckpt, method_ids, wait_s=WAIT_S):
    """{method id: {"ok": bool, "reason"}} computed by a worker on the loaded checkpoint; None if no worker answered."""
    key = cache_key(ckpt)
    found = cache.get(key)
    if found is not None:
        return decode(found)
    message = {"op": "applicable", "checkpoint": checkpoint_message(ckpt)}

    def store(result):
        cache.put(key, encode(result["methods"]))

    def cached():
        value = cache.get(key)
        return None if value is None else {"methods": decode(value)}

    try:
        result = pool.submit(key_digest(key), message, on_result=store, cached=cached).result(timeout=wait_s)
    except XaiError as e:
        if getattr(e, "http_status", 400) >= 500 or getattr(e, "http_status", 400) == 409:
            return None  # a worker that died, an overloaded pool: the manifest answers, honestly
        return refused_everywhere(method_ids, "this checkpoint cannot be loaded: %s" % e)  # not cached: a file may come back
    except Exception:  # noqa: BLE001  (a timeout: the manifest answers)
        return None
    return result["methods"]
