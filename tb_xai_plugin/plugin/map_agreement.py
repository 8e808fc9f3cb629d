"""POST agreement and POST first_last, and the suggestions' evidence axis: rank agreement of maps that
come from the attributions pipeline (its cache and tasks), computed here with numpy (engine.agreement).

Every correlation is Spearman's rho of the absolute values of two maps of one sample; NaN (JSON null)
where a map is missing (its cell failed) or constant.
"""

import numpy as np

from tb_xai_plugin.engine import agreement
from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.plugin import parsing, suggestions

CORRELATION = "spearman_abs"


def collect_maps(service, ctx, eid, req):
    """(sample-set ref, cells) with cell["maps"] [n, H, W] in request order, or cell["error"], for every (model, method)."""
    with service.begin(ctx, eid, req) as (sref, ckpts, job):
        cells = service.computed_cells(job, ckpts, sref, req)
    for cell in cells:
        service.cell_maps(cell, req)
    return sref, cells


def agreement_body(service, ctx, eid, req):
    """The body of POST agreement: a K x K matrix per model and an M x M matrix per method."""
    sref, cells = collect_maps(service, ctx, eid, req)
    methods = len(req.methods)
    grid = [cells[m * methods : (m + 1) * methods] for m in range(len(req.models))]
    body = {"samples_sha256": sref.manifest["sha256"], "indices": list(req.indices), "correlation": CORRELATION}
    body["methods"] = [
        dict({"run": run, "step": step}, **_matrix_json([c.get("maps") for c in row])) for (run, step), row in zip(req.models, grid)
    ]
    body["models"] = [
        dict({"method": method, "params": params}, **_matrix_json([row[k].get("maps") for row in grid]))
        for k, (method, params) in enumerate(req.methods)
    ]  # fmt: skip
    body["errors"] = [
        {"run": c["ckpt"].run, "step": c["ckpt"].step, "method": c["method"], "error": c["error"]} for c in cells if "error" in c
    ]
    return body


def _matrix_json(stacks):
    """{"matrix": mean over samples, "per_sample": [matrix per sample]} of the rho between every two stacks of maps."""
    per_sample = agreement.matrix(stacks)
    return {"matrix": agreement.to_json(agreement.nan_mean(per_sample, axis=0)), "per_sample": agreement.to_json(per_sample)}


def first_last_body(service, ctx, eid, req):
    """The body of POST first_last: rho per sample between each run's first and last checkpoint's maps."""
    pairs, cells = [], []
    for run in req.runs:
        steps = sorted(service.catalog.run(ctx, eid, run).checkpoints)
        pairs.append((run, steps[0], steps[-1]) if steps else (run, None, None))
    models = sorted({(run, step) for run, first, last in pairs if first is not None for step in (first, last)})
    if not models:
        raise XaiError("none of the runs %s has a checkpoint" % ", ".join(map(repr, req.runs)))
    maps_req = parsing.Attributions(**dict(vars(req.maps), models=models))
    sref, found = collect_maps(service, ctx, eid, maps_req)
    by_key = {(c["ckpt"].run, c["ckpt"].step, c["method"], repr(c["params"])): c for c in found}
    for run, first, last in pairs:
        for method, params in req.maps.methods:
            head = {"run": run, "first": first, "last": last, "method": method}
            a, b = (by_key.get((run, step, method, repr(params))) for step in (first, last))
            cells.append(dict(head, **_pair_json(run, first, last, a, b)))
    return {"samples_sha256": sref.manifest["sha256"], "indices": list(req.maps.indices), "correlation": CORRELATION, "cells": cells}


def _pair_json(run, first, last, a, b):
    """{"ok", "correlations", "mean"} of two cells' maps, or {"ok": false, "error"}."""
    if first is None:
        return {"ok": False, "error": "run %r has no checkpoints" % run}
    if first == last:
        return {"ok": False, "error": "run %r has one checkpoint (step %d): nothing to compare" % (run, first)}
    for cell in (a, b):
        if "error" in cell:
            return {"ok": False, "error": "step %d: %s" % (cell["ckpt"].step, cell["error"])}
    rho = agreement.rank_correlation(a["maps"], b["maps"])
    return {"ok": True, "correlations": agreement.to_json(rho), "mean": agreement.to_json(agreement.nan_mean(rho))}


def evidence(service, ctx, eid, req, per_model, count):
    """(per-sample 1 - mean pairwise rho of the models' maps or None, the answer's "evidence" entry); see docs/http_api.md."""
    spec = req.evidence
    entry = {"method": spec.method, "params": spec.params, "max_samples": spec.max_samples, "covered": 0, "indices": [], "agreeing": 0}
    values = [None] * count
    ok = [(m["run"], m["step"], m["predicted"]) for m in per_model if m.get("ok")]
    if len(ok) < 2:
        return values, entry
    agreeing, covered = suggestions.agreeing_samples([p for _, _, p in ok], spec.max_samples)
    entry["agreeing"] = int(len(agreeing))
    if not len(covered):
        return values, entry
    maps_req = parsing.Attributions(
        models=[(run, step) for run, step, _ in ok], samples=req.samples, indices=[int(i) for i in covered],
        methods=[(spec.method, spec.params)], target=parsing.Target("predicted"), layer=None, neuron=None, seed=0,
        request_id=req.request_id,
    )  # fmt: skip
    _, cells = _collect_in_slices(service, ctx, eid, maps_req)
    stacks = [c.get("maps") for c in cells]
    if sum(s is not None for s in stacks) < 2:
        return values, entry
    disagreement = suggestions.evidence_disagreement(agreement.matrix(stacks))
    for i, value in zip(covered, disagreement):
        values[int(i)] = None if not np.isfinite(value) else float(value)
    entry.update(covered=int(len(covered)), indices=[int(i) for i in covered])
    return values, entry


def _collect_in_slices(service, ctx, eid, req):
    """collect_maps over index slices of at most MAX_ATTRIBUTION_INDICES, joined per cell (an error in any slice fails the cell)."""
    limit = parsing.MAX_ATTRIBUTION_INDICES
    joined = None
    for start in range(0, len(req.indices), limit):
        part = parsing.Attributions(**dict(vars(req), indices=req.indices[start : start + limit]))
        sref, cells = collect_maps(service, ctx, eid, part)
        if joined is None:
            joined = cells
            continue
        for whole, cell in zip(joined, cells):
            if "error" in cell or "error" in whole:
                whole.setdefault("error", cell.get("error"))
                whole.pop("maps", None)
            else:
                whole["maps"] = np.concatenate([whole["maps"], cell["maps"]])
    return sref, joined
