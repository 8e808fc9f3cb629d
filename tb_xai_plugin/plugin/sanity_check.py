"""POST sanity: the cascading randomization test (engine.sanity) in one worker task per checkpoint,
cached per (checkpoint, method) cell (docs/http_api.md, docs/trust.md).

A cell's cache key is its map's key (plugin.service._map_key with the request's indices) plus the
randomization's parameters: a repeated request reaches no worker.
"""

import numpy as np

from tb_xai_plugin.engine import agreement, sanity
from tb_xai_plugin.plugin import service as service_module


def sanity_body(service, ctx, eid, req):
    """The body of POST sanity: per (model, method) the rho per stage and sample, its means and the badge."""
    with service.begin(ctx, eid, req.maps) as (sref, ckpts, job):
        groups = [_cells_of(service, ckpt, sref, req) for ckpt in ckpts]
        futures = [_start(service, job, ckpt, sref, req, cells) for ckpt, cells in zip(ckpts, groups)]
        service._wait(job, [f for f in futures if f is not None])
        for future, cells in zip(futures, groups):
            _collect(future, cells)
    return {
        "samples_sha256": sref.manifest["sha256"],
        "indices": list(req.maps.indices),
        "threshold": sanity.BADGE_THRESHOLD,
        "correlation": "spearman_abs",
        "randomization": req.randomization,
        "max_stages": req.max_stages,
        "cells": [_cell_json(cell) for cells in groups for cell in cells],
    }


def _cells_of(service, ckpt, sref, req):
    """One cell per method, with its cached result or error; those without either are computed."""
    cells = []
    for method, params in req.maps.methods:
        # no fitting set in the key: the sanity task sends none (a pattern method fits on the request's images)
        cell = dict(service_module.cell_spec(ckpt, sref, req.maps, method, params), fit=None)
        if "error" not in cell:
            map_key = service._map_key(cell, req.maps, tuple(req.maps.indices))
            cell["key"] = ("sanity", map_key, req.max_stages, req.randomization, req.maps.seed)
            cell["result"] = service.cache.get(cell["key"])
        cells.append(cell)
    return cells


def _start(service, job, ckpt, sref, req, cells):
    """One worker task randomizing a private copy of `ckpt` for the cells that are not cached, or None."""
    todo = [c for c in cells if "error" not in c and c["result"] is None]
    if not todo:
        return None
    maps = req.maps
    message = {
        "op": "sanity", "checkpoint": service_module.checkpoint_message(ckpt), "samples": service_module.samples_message(sref),
        "indices": list(maps.indices), "methods": [[c["method"], c["params"]] for c in todo], "target": maps.target.as_dict(),
        "layer": maps.layer, "neuron": maps.neuron, "seed": maps.seed, "max_stages": req.max_stages,
        "randomization": req.randomization,
    }  # fmt: skip

    def store(result):
        for cell, entry in zip(todo, result["methods"]):
            if "error" not in entry:
                service.cache.put(cell["key"], _entry(result, entry))

    def cached():
        found = [service.cache.get(c["key"]) for c in todo]
        return None if any(f is None for f in found) else {"cached": found}

    future = service._submit(job, ("sanity-task", [c["key"] for c in todo]), message, store, cached)
    for n, cell in enumerate(todo):
        cell["task"] = n
    return future


def _entry(result, entry):
    """One cell's cache entry: stage names, layer counts and rho [stages, samples] (NaN: undefined)."""
    return {
        "stages": list(result["stages"]),
        "randomized": [int(c) for c in result["randomized"]],
        "correlations": np.asarray(entry["correlations"], np.float64),
    }


def _collect(future, cells):
    """Fill each computed cell's result (or error) from its task."""
    if future is None:
        return
    for cell in cells:
        if "task" not in cell:
            continue
        if future.exception() is not None:
            cell["error"] = str(future.exception())
            continue
        result = future.result()
        if "cached" in result:
            cell["result"] = result["cached"][cell["task"]]
            continue
        entry = result["methods"][cell["task"]]
        if "error" in entry:
            cell["error"] = entry["error"]
        else:
            cell["result"] = _entry(result, entry)


def _cell_json(cell):
    """One cell: the stages, rho per stage and sample, their means and the badge; or its error."""
    ckpt = cell["ckpt"]
    head = {"run": ckpt.run, "step": ckpt.step, "method": cell["method"]}
    if "error" in cell:
        return dict(head, ok=False, error=cell["error"])
    result = cell["result"]
    means = agreement.nan_mean(result["correlations"], axis=1)
    return dict(
        head, ok=True, stages=[str(name) for name in result["stages"]], randomized=[int(c) for c in result["randomized"]],
        correlations=agreement.to_json(result["correlations"]), mean=agreement.to_json(means),
        badge=sanity.badge(float(means[0])),
    )  # fmt: skip
