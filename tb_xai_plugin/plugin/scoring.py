"""POST scores: the maps through the attributions pipeline (its cache and tasks), then faithfulness
curves in one worker task per model, cached per sample (docs/http_api.md, docs/trust.md).

A score's cache key is its map's key plus the metrics, fill, steps, region and seed, so a map
computed for POST attributions serves the scores and the other way round.
"""

import numpy as np

from tb_xai_plugin.engine import faithfulness
from tb_xai_plugin.plugin import service as service_module

REGION_METRICS = ("morf", "lerf")


def scores(service, ctx, eid, req):
    """The body of POST scores: one cell per (model, method) with each metric's curves and areas."""
    maps_req = req.maps
    sref = service.sample_set(ctx, eid, maps_req.samples, maps_req.indices)
    ckpts = [service.catalog.checkpoint(ctx, eid, run, step) for run, step in maps_req.models]
    job = service.jobs.start(maps_req.request_id)
    try:
        cells = [service._start_cell(job, ckpt, sref, maps_req, method, params) for ckpt in ckpts for method, params in maps_req.methods]
        service._wait(job, [c["future"] for c in cells if c.get("future") is not None])
        for cell in cells:
            _collect_maps(cell, maps_req)
        futures = [_start_group(service, job, group, sref, req) for group in _groups(service, cells, req)]
        service._wait(job, [f for f in futures if f is not None])
        for cell in cells:
            _collect_scores(service, cell, req)
        return _body(sref, cells, req)
    finally:
        job.finish()


def _collect_maps(cell, req):
    """Set cell["maps"] [n, H, W] and cell["targets"] [n] in request order, or cell["error"]."""
    if "error" in cell:
        return
    future = cell.get("future")
    if future is not None:
        if future.exception() is not None:
            cell["error"] = str(future.exception())
            return
        result = future.result()
        for n, i in enumerate(cell["missing"]):
            cell["rows"][i] = {"map": result["maps"][n], "target": result["targets"][n], "score": result["scores"][n]}
    cell["maps"] = np.stack([cell["rows"][i]["map"] for i in req.indices]).astype(np.float32)
    cell["targets"] = np.asarray([int(cell["rows"][i]["target"]) for i in req.indices], np.int64)


def _score_key(service, cell, req, index):
    """The cache key of one sample's curves in a cell: its map's key plus the metric parameters."""
    return ("scores", service._map_key(cell, req.maps, index), list(req.metrics), req.fill, req.steps, req.region, req.maps.seed)


def _groups(service, cells, req):
    """Lists of ok cells that share a checkpoint and targets and miss some curves in the cache (one task each)."""
    groups = {}
    for cell in cells:
        if "error" in cell:
            continue
        cell["score_rows"] = {i: service.cache.get(_score_key(service, cell, req, i)) for i in req.maps.indices}
        if any(row is None for row in cell["score_rows"].values()):
            groups.setdefault((cell["ckpt"].run, cell["ckpt"].step, tuple(cell["targets"])), []).append(cell)
    return list(groups.values())


def _start_group(service, job, group, sref, req):
    """A worker task computing the curves of a group's cells on the samples any of them misses."""
    positions = [n for n, i in enumerate(req.maps.indices) if any(c["score_rows"][i] is None for c in group)]
    indices = [req.maps.indices[n] for n in positions]
    ckpt = group[0]["ckpt"]
    message = {
        "op": "scores", "checkpoint": service_module.checkpoint_message(ckpt), "samples": service_module.samples_message(sref),
        "indices": indices, "targets": group[0]["targets"][positions],
        "maps": {str(k): cell["maps"][positions] for k, cell in enumerate(group)},
        "metrics": list(req.metrics), "fill": req.fill, "steps": req.steps, "region": req.region, "seed": req.maps.seed,
    }  # fmt: skip
    key = ("scores", [_score_key(service, cell, req, indices) for cell in group])

    def store(result):
        for k, cell in enumerate(group):
            for n, i in enumerate(indices):
                service.cache.put(_score_key(service, cell, req, i), _row(result, str(k), n, req.metrics))

    def cached():
        rows = [[service.cache.get(_score_key(service, cell, req, i)) for i in indices] for cell in group]
        return None if any(r is None for line in rows for r in line) else {"rows": rows}

    future = service._submit(job, key, message, store, cached)
    for k, cell in enumerate(group):
        cell["score_task"] = (future, str(k), indices)
    return future


def _row(result, name, n, metrics):
    """One sample's cache entry from a task's result: curves and random curves [M, steps + 1]."""
    return {
        "curves": np.stack([result["maps"][name][m][n] for m in metrics]),
        "random": np.stack([result["random"][m][n] for m in metrics]),
    }


def _collect_scores(service, cell, req):
    """Fill cell["score_rows"] from its task (a worker's result or rows rebuilt from the cache), or set cell["error"]."""
    if "error" in cell or "score_task" not in cell:
        return
    future, name, indices = cell["score_task"]
    if future.exception() is not None:
        cell["error"] = str(future.exception())
        return
    result = future.result()
    for n, i in enumerate(indices):
        cell["score_rows"][i] = result["rows"][int(name)][n] if "rows" in result else _row(result, name, n, req.metrics)


def _body(sref, cells, req):
    """The JSON body: request facts, the curves' x positions and one entry per cell."""
    return {
        "samples_sha256": sref.manifest["sha256"],
        "indices": list(req.maps.indices),
        "params": {"metrics": list(req.metrics), "fill": req.fill, "steps": req.steps, "region": req.region, "seed": req.maps.seed},
        "fractions": (np.arange(req.steps + 1) / req.steps).tolist(),
        "cells": [_cell_json(cell, req) for cell in cells],
    }


def _cell_json(cell, req):
    """One cell: ok with every metric's entry, or its error."""
    ckpt = cell["ckpt"]
    head = {"run": ckpt.run, "step": ckpt.step, "method": cell["method"]}
    if "error" in cell:
        return dict(head, ok=False, error=cell["error"])
    rows = [cell["score_rows"][i] for i in req.maps.indices]
    return dict(
        head, ok=True, version=service_module.checkpoint_key(ckpt), targets=cell["targets"].tolist(),
        scores={m: _metric_json(m, np.stack([r["curves"][j] for r in rows]), np.stack([r["random"][j] for r in rows]))
                for j, m in enumerate(req.metrics)},
    )  # fmt: skip


def _metric_json(metric, curves, random):
    """One metric's entry: which way is better, areas and curves of the map's order and the random one."""
    entry = {
        "better": faithfulness.METRICS[metric].better,
        "auc": faithfulness.auc(curves).tolist(), "random_auc": faithfulness.auc(random).tolist(),
        "curves": curves.tolist(), "random_curves": random.tolist(),
    }  # fmt: skip
    if metric in REGION_METRICS:
        entry["aopc"] = faithfulness.aopc(curves).tolist()
        entry["random_aopc"] = faithfulness.aopc(random).tolist()
    return entry

