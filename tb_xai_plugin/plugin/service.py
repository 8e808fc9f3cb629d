"""What the compute routes do, apart from HTTP: resolve names, consult the cache, run worker tasks.

Each public method takes checked request values (plugin.parsing) and returns the JSON body of
its route (docs/http_api.md). Errors: XaiError / NotFoundError for input, WorkerDiedError (503)
when a worker died holding one of the request's tasks, CancelledError (409) when the client
cancelled. One model or method failing only marks its own cells `ok: false`.
"""

import concurrent.futures
import contextlib

import numpy as np

from tb_xai_plugin import files, model_info
from tb_xai_plugin.engine import registry
from tb_xai_plugin.errors import NotFoundError, XaiError
from tb_xai_plugin.plugin import encoding, suggestions, versions
from tb_xai_plugin.plugin import map_agreement
from tb_xai_plugin.plugin.cache import key_digest
from tb_xai_plugin.plugin.jobs import CANCELLED
from tb_xai_plugin.plugin.workers import BULK, INTERACTIVE, CancelledError, WorkerDiedError

# Predictions for up to this many listed indices are computed (and cached) per sample; larger
# requests, and suggestions, compute the whole set once and cache it per (checkpoint, sample set).
PER_SAMPLE_LIMIT = 256
WAIT_POLL_S = 0.1
# PatternNet / PatternAttribution fit their patterns on the request's sample set: all of it, or this
# many samples evenly spaced (worker_main.pattern_fit_indices).
PATTERN_FIT_CAP = 2000
# A whole-set computation (suggestions, activations) runs as one task per chunk of rows at BULK priority,
# each chunk at most this many bytes of stored images (at least one row), a multiple of CHUNK_ROWS_STEP
# rows when it holds that many: a worker turns to the grid's tasks between chunks, a cancel drops the
# chunks not yet started, and every finished chunk counts in the progress.
CHUNK_BYTES = 16 << 20
CHUNK_ROWS_STEP = 256
MAX_CHUNKS = 128  # per model and job, so that a few jobs stay within the pool's queue (larger chunks past it)


def checkpoint_key(ref):
    """The identity of a checkpoint's content: its weights and file checksums (the URLs' version too)."""
    return "%s:%s" % (ref.manifest["weights_sha256"], ref.manifest["file_sha256"])


def model_key(ref, method=None):
    """A checkpoint in cache keys: its content and what computes its results (backend, libraries, method version)."""
    return [checkpoint_key(ref), versions.engine_key(ref.manifest, method)]


def checkpoint_message(ref):
    """What a worker needs to load a checkpoint."""
    return {"path": ref.path, "manifest": ref.manifest}


def samples_message(ref):
    """What a worker needs to read a sample set; "stamp": the file version whose sha256 this process checked."""
    return {"path": ref.path, "sha256": ref.manifest["sha256"], "stamp": files.checked_stamp(ref.path, ref.manifest["sha256"])}


def chunk_bounds(manifest):
    """[(start, stop)] of a whole-set job's chunks: at most CHUNK_BYTES of images (one row at least) each,
    unless that makes more than MAX_CHUNKS chunks."""
    count = int(manifest["count"])
    row_bytes = int(np.prod(manifest["image_shape"])) * np.dtype(manifest["dtype"]).itemsize
    rows = max(1, CHUNK_BYTES // max(1, row_bytes))
    rows = max(rows // CHUNK_ROWS_STEP * CHUNK_ROWS_STEP or rows, -(-count // MAX_CHUNKS))
    return [(start, min(count, start + rows)) for start in range(0, count, rows)]


class WholeSetTasks:
    """The chunk tasks of one whole-set computation, read like one future: result() joins their results
    row-wise (and runs `store` on the joined result once)."""

    def __init__(self, parts, store):
        self.parts, self._store, self._joined = parts, store, None

    def exception(self):
        """The first chunk's error, or None."""
        return next((p.exception() for p in self.parts if p.exception() is not None), None)

    def result(self):
        """{field: array} with the chunks' rows in order."""
        if self._joined is None:
            results = [p.result() for p in self.parts]
            self._joined = {name: np.concatenate([r[name] for r in results]) for name in results[0]} if results else {}
            self._store(self._joined)
        return self._joined


def shape_mismatch(ckpt, sref):
    """Why the checkpoint cannot take the sample set's images (input shape != image shape), or None."""
    model, images = list(ckpt.manifest["input_shape"]), list(sref.manifest["image_shape"])
    if model == images:
        return None
    return "model %s@%d takes images of shape %s; sample set %r holds %s: refused" % (
        ckpt.run, ckpt.step, model, sref.name, images)  # fmt: skip


def cell_spec(ckpt, sref, req, method, params):
    """A (checkpoint, method) cell as XaiService._map_key reads it, with its "error" if the checkpoint cannot take the request."""
    takes = registry.get(method)
    cell = {
        "ckpt": ckpt, "sref": sref, "method": method, "params": params,
        "layer": req.layer if takes.takes_layer else None,
        "neuron": req.neuron if takes.takes_neuron else None,
        "seed": req.seed if takes.sampling else 0,
        "fit": {"samples_sha256": sref.manifest["sha256"], "cap": PATTERN_FIT_CAP} if takes.family == "pattern" else None,
    }  # fmt: skip
    error = shape_mismatch(ckpt, sref)
    if error is None and req.target.kind == "class" and req.target.index >= int(ckpt.manifest["num_classes"]):
        error = "class %d is out of range: this model has %d classes" % (req.target.index, ckpt.manifest["num_classes"])
    if error is not None:
        cell["error"] = error
    return cell


def top_k(probs, k):
    """(classes [N, k], scores [N, k]) of the k largest probabilities per row, largest first."""
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(probs, order, axis=1)


class XaiService:
    """The compute behind POST predictions, attributions and suggestions."""

    def __init__(self, catalog, cache, pool, jobs, timeout_s=900.0, results=None):
        self.catalog = catalog
        self.cache = cache
        self.pool = pool
        self.jobs = jobs
        self.timeout_s = timeout_s
        self.results = results  # a result_store.ResultStore of precomputed results (tb-xai precompute), or None

    def _lookup(self, ckpt, key):
        """The value of `key` from the cache, else precomputed in the result store of ckpt's run (then cached), else None."""
        value = self.cache.get(key)
        if value is None and self.results is not None:
            value = self.results.get(ckpt.path, key)
            if value is not None:
                self.cache.put(key, value)
        return value

    # -- resolution -------------------------------------------------------------------------

    def sample_set(self, ctx, eid, samples, indices=None):
        """The SampleSetRef of (run, name); NotFoundError for an index beyond its count."""
        ref = self.catalog.sample_set(ctx, eid, *samples)
        self.catalog.reader(ref)  # checks its sha256 (once per file version) before any worker reads it
        count = int(ref.manifest["count"])
        for i in indices or ():
            if i >= count:
                raise NotFoundError("sample set %r has %d samples; there is no index %d" % (ref.name, count, i))
        return ref

    def _labels(self, ref, indices):
        """The set's labels at `indices` (None: all) as ints, -1 meaning none; None if it has no labels."""
        if not ref.manifest["has_labels"]:
            return None
        labels = self.catalog.reader(ref).labels
        return labels if indices is None else labels[indices]

    @contextlib.contextmanager
    def begin(self, ctx, eid, req):
        """(sample-set ref, checkpoints of req.models, job) of a request over req.samples at req.indices; the job finishes on exit."""
        sref = self.sample_set(ctx, eid, req.samples, req.indices)
        ckpts = [self.catalog.checkpoint(ctx, eid, run, step) for run, step in req.models]
        job = self.jobs.start(req.request_id)
        try:
            yield sref, ckpts, job
        finally:
            job.finish()

    # -- waiting ----------------------------------------------------------------------------

    def _submit(self, job, key, message, store, cached, priority=INTERACTIVE, units=None):
        """Submit a task whose progress counts toward `job` (as `units` before it starts, when given);
        store(result) fills the cache before the task counts as done, and cached() rebuilds the result
        from the cache (None if incomplete), so an identical request never falls between in-flight and cached."""
        future = self.pool.submit(key_digest(key), message, on_result=store, cached=cached, priority=priority)
        future.add_listener(lambda done, total, part=future.task_id: job.report(part, done, total))
        if units is not None:
            job.expect(future.task_id, units)
            if future.done():
                job.report(future.task_id, units, units)
        job.attach(future)
        return future

    def _request_whole(self, job, sref, key, message, store):
        """WholeSetTasks computing `message` on every sample, one BULK task per chunk of rows (see
        CHUNK_BYTES), each chunk's result cached under `key` + its rows; store(joined result) once all are in."""
        parts = []
        for start, stop in chunk_bounds(sref.manifest):
            chunk_key = tuple(key) + ("rows", start, stop)
            chunk = dict(message, indices=None, rows=[start, stop])
            put = lambda result, k=chunk_key: self.cache.put(k, result)  # noqa: E731
            parts.append(self._submit(job, chunk_key, chunk, put, lambda k=chunk_key: self.cache.get(k), BULK, stop - start))
        return WholeSetTasks(parts, store)

    def _wait(self, job, futures):
        """Wait for all futures; CancelledError if the job is cancelled, WorkerDiedError if a worker died."""
        futures = [part for future in futures for part in getattr(future, "parts", [future])]
        pending = set(futures)
        waited = 0.0
        while pending:
            if job.state == CANCELLED:
                raise CancelledError("cancelled")
            _, pending = concurrent.futures.wait(pending, timeout=WAIT_POLL_S)
            waited += WAIT_POLL_S
            if waited > self.timeout_s:
                for future in pending:
                    self.pool.stop_worker_of(future)  # a stuck worker is replaced, its tasks fail
                raise WorkerDiedError("the computation took longer than %d s; retry with fewer samples" % self.timeout_s)
        for future in futures:
            error = future.exception()
            if isinstance(error, (WorkerDiedError, CancelledError)):
                raise error
        if job.state == CANCELLED:
            raise CancelledError("cancelled")

    # -- probabilities ----------------------------------------------------------------------

    def _probs_all_key(self, ckpt, sref):
        """Cache key of a checkpoint's probabilities on a whole sample set."""
        return ("probs-all", model_key(ckpt), sref.manifest["sha256"])

    def _probs_index_key(self, ckpt, sref, index):
        """Cache key of a checkpoint's probabilities on one sample."""
        return ("probs", model_key(ckpt), sref.manifest["sha256"], index)

    def _request_probs(self, job, ckpt, sref, indices):
        """Cached probabilities [n, K] of `ckpt` at `indices` (None: all), or the future computing them."""
        whole = self._lookup(ckpt, self._probs_all_key(ckpt, sref))
        if whole is not None:
            probs = whole["probs"]
            return ("done", probs if indices is None else probs[indices])
        if indices is not None and len(indices) <= PER_SAMPLE_LIMIT:
            rows = {i: self._lookup(ckpt, self._probs_index_key(ckpt, sref, i)) for i in indices}
            missing = [i for i, row in rows.items() if row is None]
            if not missing:
                return ("done", np.stack([rows[i]["probs"] for i in indices]))
            message = {"op": "predict", "checkpoint": checkpoint_message(ckpt), "samples": samples_message(sref), "indices": missing}
            key = ("predict", model_key(ckpt), sref.manifest["sha256"], tuple(missing))

            def store(result):
                for i, row in zip(missing, result["probs"]):
                    self.cache.put(self._probs_index_key(ckpt, sref, i), {"probs": row})

            def cached():
                found = [self.cache.get(self._probs_index_key(ckpt, sref, i)) for i in missing]
                return None if any(f is None for f in found) else {"probs": np.stack([f["probs"] for f in found])}

            return ("some", (rows, missing, self._submit(job, key, message, store, cached)))
        message = {"op": "predict", "checkpoint": checkpoint_message(ckpt), "samples": samples_message(sref), "indices": None}
        key = ("predict", model_key(ckpt), sref.manifest["sha256"], None)
        all_key = self._probs_all_key(ckpt, sref)
        store = lambda result: self.cache.put(all_key, {"probs": result["probs"]})  # noqa: E731
        return ("all", self._request_whole(job, sref, key, message, store))

    def _collect_probs(self, ckpt, sref, indices, pending):
        """Probabilities from a finished _request_probs; XaiError if the task failed."""
        kind, value = pending
        if kind == "done":
            return value
        if kind == "error":
            raise value
        future = value if kind == "all" else value[2]
        if future.exception() is not None:
            raise future.exception()
        probs = future.result()["probs"]
        if kind == "all":
            return probs if indices is None else probs[indices]
        rows, missing, _ = value
        for i, row in zip(missing, probs):
            rows[i] = {"probs": row}
        return np.stack([rows[i]["probs"] for i in indices])

    def _model_probs(self, ctx, eid, models, sref, indices, job, first=None):
        """[(run, step, probs or XaiError)] for each model, computed in parallel tasks; `first`: the first
        model's pending probabilities when already requested (see _request_first)."""
        entries = []
        for n, (run, step) in enumerate(models):
            ckpt = self.catalog.checkpoint(ctx, eid, run, step)
            mismatch = shape_mismatch(ckpt, sref)
            if n == 0 and first is not None:
                pending = first
            else:
                pending = ("error", XaiError(mismatch)) if mismatch else self._request_probs(job, ckpt, sref, indices)
            entries.append((run, step, ckpt, pending))
        self._wait(job, [p[1] if p[0] == "all" else p[1][2] for *_, p in entries if p[0] in ("all", "some")])
        out = []
        for run, step, ckpt, pending in entries:
            try:
                out.append((run, step, ckpt, self._collect_probs(ckpt, sref, indices, pending)))
            except XaiError as e:
                out.append((run, step, ckpt, e))
        return out

    # -- routes -----------------------------------------------------------------------------

    def predictions(self, ctx, eid, req):
        """The body of POST predictions: top-k classes and scores per model."""
        sref = self.sample_set(ctx, eid, req.samples, req.indices)
        indices = req.indices if req.indices is not None else list(range(int(sref.manifest["count"])))
        job = self.jobs.start(req.request_id)
        try:
            results = self._model_probs(ctx, eid, req.models, sref, req.indices, job)
        finally:
            job.finish()
        labels = self._labels(sref, indices)
        body = {"indices": indices, "labels": None if labels is None else [_label(v) for v in labels], "models": []}
        for run, step, _, probs in results:
            if isinstance(probs, XaiError):
                body["models"].append({"run": run, "step": step, "ok": False, "error": str(probs)})
                continue
            classes, scores = top_k(probs, req.top_k)
            body["models"].append(
                {"run": run, "step": step, "ok": True, "top_classes": classes.tolist(), "top_scores": scores.tolist()}
            )
        return body

    def attributions(self, ctx, eid, req):
        """The body of POST attributions: one cell per (model, method)."""
        with self.begin(ctx, eid, req) as (sref, ckpts, job):
            cells = self.computed_cells(job, ckpts, sref, req)
            return {"samples_sha256": sref.manifest["sha256"], "cells": [self._finish_cell(cell, req) for cell in cells]}

    def computed_cells(self, job, ckpts, sref, req):
        """One cell per (checkpoint, method), its task (if any) finished: read its maps with cell_rows or cell_maps."""
        cells = [self._start_cell(job, ckpt, sref, req, method, params) for ckpt in ckpts for method, params in req.methods]
        self._wait(job, [c["future"] for c in cells if c.get("future") is not None])
        return cells

    def _map_key(self, cell, req, index):
        """The cache key of one sample's map in a cell (layer, neuron and seed only where the method uses them;
        the fitting set, sample-set sha256 and cap, only for pattern methods)."""
        key = (
            "map", model_key(cell["ckpt"], registry.get(cell["method"])), cell["sref"].manifest["sha256"], cell["method"], cell["params"],
            req.target.key(), cell["layer"], cell["neuron"], cell["seed"], index,
        )  # fmt: skip
        return key if cell["fit"] is None else key + (["fit", cell["fit"]["samples_sha256"], cell["fit"]["cap"]],)

    def _start_cell(self, job, ckpt, sref, req, method, params):
        """A cell's cached maps, plus a task for the samples not in the cache."""
        cell = cell_spec(ckpt, sref, req, method, params)
        if "error" in cell:
            return cell
        cell["rows"] = {i: self._lookup(ckpt, self._map_key(cell, req, i)) for i in req.indices}
        cell["missing"] = [i for i, row in cell["rows"].items() if row is None]
        if cell["missing"]:
            message = {
                "op": "attribute", "checkpoint": checkpoint_message(ckpt), "samples": samples_message(sref),
                "indices": cell["missing"], "method": method, "params": params, "target": req.target.as_dict(),
                "layer": cell["layer"], "neuron": cell["neuron"], "seed": cell["seed"],
                "fit": cell["fit"] and {"cap": cell["fit"]["cap"]},
            }  # fmt: skip
            key = ("attribute",) + self._map_key(cell, req, tuple(cell["missing"]))
            cell["future"] = self._submit(
                job, key, message, lambda result: self._store_maps(cell, req, result), lambda: self._cached_maps(cell, req)
            )
        return cell

    def _cached_maps(self, cell, req):
        """A task's result for the cell's missing samples rebuilt from the cache, or None if one is not there."""
        found = [self.cache.get(self._map_key(cell, req, i)) for i in cell["missing"]]
        if any(f is None for f in found):
            return None
        fields = (("maps", "map"), ("targets", "target"), ("scores", "score"))
        return {name: np.stack([f[field] for f in found]) for name, field in fields}

    def _store_maps(self, cell, req, result):
        """Put a finished task's maps into the cache, one entry per sample."""
        for n, i in enumerate(cell["missing"]):
            row = {"map": result["maps"][n], "target": result["targets"][n], "score": result["scores"][n]}
            self.cache.put(self._map_key(cell, req, i), row)

    def cell_rows(self, cell, req):
        """A started cell's rows ({map, target, score}) in request order, from the cache and its finished task; None and cell["error"] if it failed."""
        if "error" in cell:
            return None
        future = cell.get("future")
        if future is not None:
            if future.exception() is not None:
                cell["error"] = str(future.exception())
                return None
            result = future.result()
            for n, i in enumerate(cell["missing"]):
                cell["rows"][i] = {"map": result["maps"][n], "target": result["targets"][n], "score": result["scores"][n]}
        return [cell["rows"][i] for i in req.indices]

    def cell_maps(self, cell, req):
        """Set cell["maps"] [n, H, W] and cell["targets"] [n] in request order, or leave cell["error"]."""
        rows = self.cell_rows(cell, req)
        if rows is not None:
            cell["maps"] = np.stack([r["map"] for r in rows]).astype(np.float32)
            cell["targets"] = np.asarray([int(r["target"]) for r in rows], np.int64)

    def _finish_cell(self, cell, req):
        """The JSON of one cell."""
        ckpt, method = cell["ckpt"], cell["method"]
        head = {"run": ckpt.run, "step": ckpt.step, "method": method}
        rows = self.cell_rows(cell, req)
        if rows is None:
            return dict(head, ok=False, error=cell["error"])
        payload = encoding.float32_payload(np.stack([r["map"] for r in rows]))
        return dict(
            head,
            ok=True,
            version=checkpoint_key(ckpt),
            signed=registry.get(method).signed,
            targets=[int(r["target"]) for r in rows],
            scores=[float(r["score"]) for r in rows],
            **payload,
        )

    def suggestions(self, ctx, eid, req):
        """The body of POST suggestions: per-model and per-sample statistics over the whole set."""
        sref = self.sample_set(ctx, eid, req.samples)
        ckpts = [self.catalog.checkpoint(ctx, eid, run, step) for run, step in req.models]
        classes = {int(c.manifest["num_classes"]) for c in ckpts}
        if len(classes) > 1:
            raise XaiError("the models have different numbers of classes (%s); compare models of one task" % sorted(classes))
        head = suggestions.common_head([model_info.manifest_head(c.manifest) for c in ckpts])
        job = self.jobs.start(req.request_id)
        try:
            first, activation = self._request_first(job, ckpts[0], sref, req) if req.layer is not None else (None, None)
            results = self._model_probs(ctx, eid, req.models, sref, None, job, first=first)
            if activation is not None and activation[0] == "future":
                self._wait(job, [activation[1]])
            activation = self._collect_activation(ckpts[0], sref, req, activation)
        finally:
            job.finish()
        labels = self._labels(sref, None)
        body = {"count": int(sref.manifest["count"]), "labels": None if labels is None else [_label(v) for v in labels]}
        body["per_model"], good = [], []
        for run, step, _, probs in results:
            if isinstance(probs, XaiError):
                body["per_model"].append({"run": run, "step": step, "ok": False, "error": str(probs)})
                continue
            good.append(probs)
            body["per_model"].append(dict({"run": run, "step": step, "ok": True}, **suggestions.per_model(probs, labels)))
        body["per_sample"] = suggestions.per_sample(good, labels, head) if good else suggestions.empty(body["count"])
        body["head"] = head
        body["activation"] = activation
        if req.evidence is not None:  # opt-in: 1 - the models' map agreement where they agree on the class
            values, body["evidence"] = map_agreement.evidence(self, ctx, eid, req, body["per_model"], body["count"])
            body["per_sample"]["evidence_disagreement"] = values
        return body

    def _activation_key(self, ckpt, sref, req):
        """Cache key of a layer's (or channel's) mean activations on a whole sample set."""
        return ("activation", model_key(ckpt), sref.manifest["sha256"], req.layer, req.neuron)

    def _request_first(self, job, ckpt, sref, req):
        """(pending probabilities or None, pending activation) of the first model: one task computes both
        in the same forward pass when neither is cached and the manifest has the layer (and channel)."""
        act_key, probs_key = self._activation_key(ckpt, sref, req), self._probs_all_key(ckpt, sref)
        if (
            shape_mismatch(ckpt, sref) or not _has_layer(ckpt.manifest, req.layer, req.neuron)
            or self._lookup(ckpt, act_key) is not None or self._lookup(ckpt, probs_key) is not None
        ):  # fmt: skip
            return None, self._request_activation(job, ckpt, sref, req)
        message = {
            "op": "predict", "checkpoint": checkpoint_message(ckpt), "samples": samples_message(sref),
            "indices": None, "layer": req.layer, "neuron": req.neuron,
        }  # fmt: skip

        def store(result):
            self.cache.put(probs_key, {"probs": result["probs"]})
            self.cache.put(act_key, {"mean": result["mean"]})

        tasks = self._request_whole(job, sref, ("predict",) + act_key, message, store)
        return ("all", tasks), ("future", tasks)

    def _request_activation(self, job, ckpt, sref, req):
        """The cached mean activations of the first model, or the future computing them."""
        cached = self._lookup(ckpt, self._activation_key(ckpt, sref, req))
        if cached is not None:
            return ("done", cached["mean"])
        message = {
            "op": "activation", "checkpoint": checkpoint_message(ckpt), "samples": samples_message(sref),
            "indices": None, "layer": req.layer, "neuron": req.neuron,
        }  # fmt: skip
        key = self._activation_key(ckpt, sref, req)
        store = lambda result: self.cache.put(key, {"mean": result["mean"]})  # noqa: E731
        return ("future", self._request_whole(job, sref, key, message, store))

    def _collect_activation(self, ckpt, sref, req, pending):
        """{"layer", "neuron", "mean"} (or with "error") from _request_activation; None if not asked."""
        if pending is None:
            return None
        head = {"run": ckpt.run, "step": ckpt.step, "layer": req.layer, "neuron": req.neuron}
        kind, value = pending
        if kind == "future":
            if value.exception() is not None:
                return dict(head, ok=False, error=str(value.exception()))
            value = value.result()["mean"]
        return dict(head, ok=True, mean=np.asarray(value, dtype=np.float64).tolist())


def _has_layer(manifest, layer, neuron):
    """Whether the manifest lists `layer` and, if neuron is given, neuron indexes its output's last axis."""
    shapes = [entry.get("output_shape") for entry in manifest.get("layers", []) if entry.get("name") == layer]
    if not shapes or neuron is None:
        return bool(shapes)
    last = shapes[0][-1] if isinstance(shapes[0], list) and shapes[0] else None
    return isinstance(last, int) and not isinstance(neuron, bool) and isinstance(neuron, int) and 0 <= neuron < last


def _label(value):
    """A stored label as JSON: the class index, or None for -1 (no label)."""
    value = int(value)
    return value if value >= 0 else None
