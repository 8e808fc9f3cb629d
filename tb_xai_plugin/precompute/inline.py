"""One precompute item computed in this process by the plugin's own code, its results written to the result store.

The plugin's XaiService answers the item's request (plugin.parsing, catalog, cache keys and all)
with an InlinePool in place of the worker pool: each task runs at once in this process on a
worker_main.Worker, as a worker process would run it. Every value the service puts into its cache
under a key it looks up in the result store (STORED_KINDS) is written to the result store of the
checkpoint's run, unless it is there already; a rerun computes nothing that is stored.
"""

import concurrent.futures
import itertools
import os
import posixpath
import types

from tb_xai_plugin import files
from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.plugin import parsing, result_store, worker_main
from tb_xai_plugin.plugin.cache import ResultCache, key_digest
from tb_xai_plugin.plugin.catalog import Catalog
from tb_xai_plugin.plugin.jobs import Jobs
from tb_xai_plugin.plugin.service import XaiService
from tb_xai_plugin.plugin.workers import CancelledError

# The first element of the cache keys that XaiService._lookup reads from the result store.
STORED_KINDS = ("probs-all", "probs", "map", "activation")
MEMORY_BYTES = 1 << 30  # the in-process cache (results of one item, and whole-set predictions)
LISTING_TTL_S = 60.0  # how long a run's listing of stored results is trusted (one item never writes a key twice)


class InlineWorker(worker_main.Worker):
    """A worker_main.Worker without a pipe: progress goes nowhere, nothing can cancel it."""

    def __init__(self, options):
        super().__init__(None, options)

    def progress(self, done, total):
        """Nothing listens."""


class InlineFuture(concurrent.futures.Future):
    """A task's future, settled before it is returned (what the service needs of workers.TaskFuture)."""

    def __init__(self, task_id):
        super().__init__()
        self.task_id = task_id

    def add_listener(self, listener):
        """No progress to report: the task is done."""

    def cancel_task(self):
        """Nothing to cancel: the task is done."""


class InlinePool:
    """The worker pool's submit, run at once in this process; `stats["computed"]` counts the tasks run."""

    def __init__(self, worker):
        self.worker = worker
        self.stats = {"computed": 0}
        self._ids = itertools.count(1)

    def submit(self, key, message, on_result=None, cached=None, **_):
        """A settled InlineFuture: the cached result, or the task's result (on_result run first) or error."""
        future = InlineFuture(next(self._ids))
        result = cached() if cached is not None else None
        if result is not None:
            future.set_result(result)
            return future
        self.stats["computed"] += 1
        kind, _, payload = self.worker.answer(future.task_id, message)
        if kind == "error":
            status, text = payload
            error = CancelledError(text) if status == 409 else XaiError(text)
            error.http_status = status
            future.set_exception(error)
            return future
        if on_result is not None:
            on_result(payload)
        future.set_result(payload)
        return future

    def stop_worker_of(self, future):
        """Nothing runs in the background."""


class RecordingCache(ResultCache):
    """An in-memory ResultCache that also remembers what was put under a STORED_KINDS key: {digest: (key, value)}."""

    def __init__(self):
        super().__init__(MEMORY_BYTES)
        self.recorded = {}

    def put(self, key, value):
        """Store in memory; record it when the plugin looks such keys up in the result store."""
        super().put(key, value)
        if key and key[0] in STORED_KINDS:
            self.recorded[key_digest(key)] = (key, value)


class RunList:
    """The data provider's list_runs for the catalog: the runs of the logdir."""

    def __init__(self, runs):
        self.runs = list(runs)

    def list_runs(self, ctx, experiment_id=None):
        """The runs, as TensorBoard's data provider gives them."""
        return [types.SimpleNamespace(run_name=run) for run in self.runs]


class Computer:
    """The plugin's service over one logdir, computing in this process (one per Beam worker)."""

    def __init__(self, logdir, runs, options=None):
        self.catalog = Catalog(logdir, RunList(runs), ttl_s=3600.0)
        self.pool = InlinePool(InlineWorker(options or {}))
        self.store = result_store.ResultStore(ttl_s=LISTING_TTL_S)
        self.logdir = logdir

    def compute(self, item):
        """Answer one plan item and write its new results: {"written", "stored", "failed": [messages]}."""
        cache = RecordingCache()
        service = XaiService(self.catalog, cache, self.pool, Jobs(), results=self.store)
        try:
            checkpoint = self.catalog.checkpoint(None, "", item["run"], item["step"])
            failed = self._answer(service, item)
        except XaiError as e:  # e.g. the checkpoint or sample set was deleted since the plan
            return {"written": 0, "stored": 0, "failed": [str(e)]}
        written = stored = 0
        folder = result_store.results_dir_of_checkpoint(checkpoint.path)
        for digest, (key, value) in cache.recorded.items():
            if self.store.has(checkpoint.path, key):
                stored += 1
                continue
            path = result_store.result_path(folder, digest)
            files.ensure_dir(posixpath.dirname(path) if "://" in path else os.path.dirname(path))
            files.write_bytes(path, result_store.encode(key, value))
            written += 1
        return {"written": written, "stored": stored, "failed": failed}

    def _answer(self, service, item):
        """Run the item's request through the service: the messages of its failed cells."""
        if item["kind"] == "suggestions":
            body = service.suggestions(None, "", parsing.parse_suggestions(item["body"]))
            failed = [m["error"] for m in body["per_model"] if not m["ok"]]
            if body.get("activation") and not body["activation"]["ok"]:
                failed.append(body["activation"]["error"])
        else:
            body = service.attributions(None, "", parsing.parse_attributions(item["body"]))
            failed = [c["error"] for c in body["cells"] if not c["ok"]]
        return failed
