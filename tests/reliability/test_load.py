"""Fifty clients at once over three models (the short version of bench/load_bench.py): every answer
equals the engine's, none is lost, identical work is computed once, memory stays within its budget."""

import sys
import concurrent.futures
import json
import urllib.request

import pytest

from bench.load_bench import MemoryMonitor, percentiles, run_clients, specs
from tb_xai_plugin.plugin.workers import WorkerPool, process_rss
from tests.plugin.conftest import Served
from tests.reliability.conftest import (
    MODELS,
    SAMPLES,
    HttpServed,
    assert_maps_match,
    assert_predictions_match,
    engine_reference,
)

CLIENTS = 50
DURATION_S = 12
WORKERS = 2
WORKER_MEMORY_MB = 1536
CACHE_MB = 32
SPECS = specs(MODELS, ["gradient", "grad_cam"], count=4)
SPEC_BODY = {"models": [{"run": "m2", "step": 1}], "samples": SAMPLES, "indices": [5, 6]}  # 3 models x 2 blocks x (1 prediction + 2 methods)


def reference_jobs():
    """One engine job per spec, in the engine_reference.py format."""
    jobs = []
    for i, spec in enumerate(SPECS):
        job = {"id": str(i), "run": spec["run"], "step": spec["step"], "samples": [SAMPLES["run"], SAMPLES["name"]]}
        job["indices"] = spec["indices"]
        if spec["kind"] == "predictions":
            jobs.append(dict(job, op="predict"))
        else:
            jobs.append(dict(job, op="attribute", method=spec["method"], target={"kind": "predicted"}))
    return jobs


def warm_up(server):
    """Start both workers and load the models (on a sample no spec asks), so that the load measures serving."""
    body = {"models": [{"run": r, "step": s} for r, s in MODELS], "samples": SAMPLES, "indices": [15]}
    with concurrent.futures.ThreadPoolExecutor(WORKERS) as executor:
        answers = list(executor.map(lambda _: server.post("predictions", dict(body, top_k=1)), range(WORKERS)))
    assert all(a.status_code == 200 for a in answers)
    server.plugin.pool.stats.update(submitted=0, merged=0, late_cache_hits=0)
    server.plugin.cache.stats.clear()


@pytest.fixture(scope="module")
def load_run(three_models, tmp_path_factory):
    """The load, run once: (server, records, sent, peak memory, reference answers)."""
    server = HttpServed(
        three_models, str(tmp_path_factory.mktemp("cache")), xai_workers=WORKERS,
        xai_worker_memory_mb=WORKER_MEMORY_MB, xai_cache_mb=CACHE_MB,
    )  # fmt: skip
    pool, cache = server.plugin.pool, server.plugin.cache
    try:
        warm_up(server)
        with MemoryMonitor(lambda: sum(process_rss(pid) for pid in pool.pids()) + cache.memory_bytes, 0.1) as monitor:
            records, sent = run_clients(server.base, SPECS, SAMPLES, CLIENTS, DURATION_S)
        reference = engine_reference(three_models, reference_jobs())
        yield server, records, sent, monitor.peak, reference
    finally:
        server.close()


def test_every_request_is_answered_once_and_correctly(load_run):
    server, records, sent, _, reference = load_run
    assert len(records) == sent >= CLIENTS  # nothing lost: every request sent got its answer
    assert len({r.request_id for r in records}) == len(records)
    assert [r for r in records if r.status != 200] == []
    for record in records:
        spec, expected = SPECS[record.spec], reference[str(record.spec)]
        if spec["kind"] == "predictions":
            assert_predictions_match(record.body["models"][0], expected, top_k=3)
        else:
            cell = record.body["cells"][0]
            assert cell["ok"] is True and cell["method"] == spec["method"], cell
            assert_maps_match(cell, expected)
    for record in records[:: max(1, len(records) // 40)]:  # the server saw each one finish exactly once
        with urllib.request.urlopen(server.base + "progress?request_id=" + record.request_id) as response:
            assert json.loads(response.read())["state"] == "done"


def test_identical_requests_are_computed_once(load_run):
    server, records, _, _, _ = load_run
    stats = server.plugin.pool.stats
    asked = {r.spec for r in records}
    assert stats["submitted"] == len(asked) == len(SPECS)  # one worker task per distinct request
    assert stats["died"] == 0 and stats["out_of_memory"] == 0
    cache = server.plugin.cache.stats
    assert cache["memory_hits"] + stats["merged"] + stats["late_cache_hits"] >= len(records) - len(SPECS)


def test_memory_stays_within_the_configured_budget(load_run):
    server, records, _, peak, _ = load_run
    budget = (WORKERS * WORKER_MEMORY_MB + CACHE_MB) << 20
    assert 0 < peak <= budget
    assert server.plugin.cache.memory_bytes <= CACHE_MB << 20
    latencies = percentiles([r.latency_s for r in records])
    print("load: %d requests, p50 %.3f s, p90 %.3f s, p99 %.3f s, peak %d MiB" % (
        len(records), latencies[50], latencies[90], latencies[99], peak >> 20))  # fmt: skip


def test_a_task_finished_between_cache_miss_and_submit_is_not_computed_again():
    pool = WorkerPool(1)
    try:
        future = pool.submit("key", {"op": "predict"}, cached=lambda: {"probs": [[1.0]]})
        assert future.done() and future.result() == {"probs": [[1.0]]}
        assert pool.stats["late_cache_hits"] == 1 and pool.stats["submitted"] == 0 and pool.pids() == []
    finally:
        pool.close()


def in_pool_submit():
    """Whether WorkerPool.submit (its locked cache re-check) is on the calling stack."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is WorkerPool.submit.__code__:
            return True
        frame = frame.f_back
    return False


def test_results_cached_after_the_miss_are_served_without_a_task(three_models, tmp_path, monkeypatch):
    """The interleaving above made certain: in each request, each key's first lookup before the pool misses
    although the value is there (it 'arrived' just after); answers come from the cache, equal, with no task.
    The pool's own re-check under its lock is not made to miss: a task stores its result before it leaves
    the in-flight table, so nothing can arrive between that check and the submit (a whole-set request's
    chunk keys are looked up only there)."""
    server = Served(three_models, str(tmp_path / "cache"))
    try:
        bodies = {
            "attributions": dict(SPEC_BODY, methods=[{"id": "gradient"}]),
            "predictions": dict(SPEC_BODY, top_k=3),
            "suggestions": {"models": SPEC_BODY["models"], "samples": SAMPLES},
        }
        first = {route: server.post(route, body).get_json() for route, body in bodies.items()}
        cache, pool = server.plugin.cache, server.plugin.pool
        submitted, seen, real_get = pool.stats["submitted"], set(), cache.get

        def late_get(key):
            digest = repr(key)
            if digest not in seen and not in_pool_submit():
                seen.add(digest)
                return None
            return real_get(key)

        monkeypatch.setattr(cache, "get", late_get)
        for route, body in bodies.items():
            seen.clear()
            assert server.post(route, body).get_json() == first[route], route
        assert pool.stats["submitted"] == submitted and pool.stats["late_cache_hits"] >= 3
    finally:
        server.close()
