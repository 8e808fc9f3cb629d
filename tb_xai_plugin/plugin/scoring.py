"""POST scores: the maps through the attributions pipeline (its cache and tasks), then faithfulness
curves in one worker task per model, cached per sample (docs/http_api.md, docs/trust.md).

A score's cache key is its map's key plus the metrics, fill, steps, region and seed, so a map
computed for POST attributions serves the scores and the other way round. The random-order curves
do not depend on the map: they are cached apart, per (checkpoint, sample, target, parameters), so
the methods of one model share them across requests.
"""

import numpy as np

from tb_xai_plugin.engine import faithfulness
from tb_xai_plugin.plugin import service as service_module

REGION_METRICS = ("morf", "lerf")


def scores(service, ctx, eid, req):
    """The body of POST scores: one cell per (model, method) with each metric's curves and areas."""
    with service.begin(ctx, eid, req.maps) as (sref, ckpts, job):
        cells = service.computed_cells(job, ckpts, sref, req.maps)
        for cell in cells:
            service.cell_maps(cell, req.maps)
        futures = [_start_group(service, job, group, sref, req) for group in _groups(service, cells, req)]
        service._wait(job, [f for f in futures if f is not None])
        for cell in cells:
            _collect_scores(cell, req)
        return _body(sref, cells, req)


def _score_key(service, cell, req, index):
    """The cache key of one sample's curves in a cell: its map's key plus the metric parameters."""
    return ("scores", service._map_key(cell, req.maps, index), list(req.metrics), req.fill, req.steps, req.region, req.maps.seed)


def _random_key(cell, req, index, target):
    """The cache key of one sample's random-order curves: they depend on the model, image, target and parameters, not the map."""
    ckpt, sref = cell["ckpt"], cell["sref"]
    return ("scores-random", service_module.model_key(ckpt), sref.manifest["sha256"], index, int(target), list(req.metrics),
            req.fill, req.steps, req.region, req.maps.seed)  # fmt: skip


def _groups(service, cells, req):
    """Lists of ok cells that share a checkpoint and targets and miss some curves in the cache (one task each);
    each ok cell gets "score_rows" {index: {"curves"} or None} and "random_rows" {index: {"random"} or None}."""
    groups = {}
    for cell in cells:
        if "error" in cell:
            continue
        indices, targets = req.maps.indices, cell["targets"]
        cell["score_rows"] = {i: service.cache.get(_score_key(service, cell, req, i)) for i in indices}
        cell["random_rows"] = {i: service.cache.get(_random_key(cell, req, i, t)) for i, t in zip(indices, targets)}
        if any(row is None for rows in (cell["score_rows"], cell["random_rows"]) for row in rows.values()):
            groups.setdefault((cell["ckpt"].run, cell["ckpt"].step, tuple(targets)), []).append(cell)
    return list(groups.values())


def _start_group(service, job, group, sref, req):
    """A worker task computing the curves of a group's cells (and the random ones) on the samples any of them misses."""
    missing = lambda c, i: c["score_rows"][i] is None or c["random_rows"][i] is None  # noqa: E731
    positions = [n for n, i in enumerate(req.maps.indices) if any(missing(c, i) for c in group)]
    indices = [req.maps.indices[n] for n in positions]
    first, targets = group[0], group[0]["targets"][positions]
    random = any(first["random_rows"][i] is None for i in indices)
    message = {
        "op": "scores", "checkpoint": service_module.checkpoint_message(first["ckpt"]), "samples": service_module.samples_message(sref),
        "indices": indices, "targets": targets, "maps": {str(k): cell["maps"][positions] for k, cell in enumerate(group)},
        "metrics": list(req.metrics), "fill": req.fill, "steps": req.steps, "region": req.region, "seed": req.maps.seed,
        "random": random,
    }  # fmt: skip
    key = ("scores", [_score_key(service, cell, req, indices) for cell in group], random)

    def store(result):
        for k, cell in enumerate(group):
            for n, i in enumerate(indices):
                service.cache.put(_score_key(service, cell, req, i), {"curves": _stack(result["maps"][str(k)], req.metrics, n)})
        for n, (i, target) in enumerate(zip(indices, targets)):
            if result["random"]:
                service.cache.put(_random_key(first, req, i, target), {"random": _stack(result["random"], req.metrics, n)})

    def cached():
        rows = [[service.cache.get(_score_key(service, cell, req, i)) for i in indices] for cell in group]
        randoms = [service.cache.get(_random_key(first, req, i, t)) for i, t in zip(indices, targets)]
        found = [r for line in rows for r in line] + randoms
        return None if any(r is None for r in found) else {"rows": rows, "random_rows": randoms}

    future = service._submit(job, key, message, store, cached)
    for k, cell in enumerate(group):
        cell["score_task"] = (future, k, indices)
    return future


def _stack(curves, metrics, n):
    """float64 [M, steps + 1]: sample n's curve of each metric, in the request's order."""
    return np.stack([curves[m][n] for m in metrics])


def _collect_scores(cell, req):
    """Fill a cell's missing rows from its task (a worker's result or rows rebuilt from the cache), or set cell["error"]."""
    if "error" in cell or "score_task" not in cell:
        return
    future, k, indices = cell["score_task"]
    if future.exception() is not None:
        cell["error"] = str(future.exception())
        return
    result = future.result()
    for n, i in enumerate(indices):
        if "rows" in result:
            cell["score_rows"][i], cell["random_rows"][i] = result["rows"][k][n], result["random_rows"][n]
            continue
        cell["score_rows"][i] = {"curves": _stack(result["maps"][str(k)], req.metrics, n)}
        if result["random"]:
            cell["random_rows"][i] = {"random": _stack(result["random"], req.metrics, n)}


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
    curves = np.stack([cell["score_rows"][i]["curves"] for i in req.maps.indices], axis=1)  # [M, n, steps + 1]
    random = np.stack([cell["random_rows"][i]["random"] for i in req.maps.indices], axis=1)
    return dict(
        head, ok=True, version=service_module.checkpoint_key(ckpt), targets=cell["targets"].tolist(),
        scores={m: _metric_json(m, curves[j], random[j]) for j, m in enumerate(req.metrics)},
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

