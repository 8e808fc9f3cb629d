"""TensorBoard killed (SIGKILL) while jobs run and the disk cache is being written, then restarted on
the same cache folder: no half-written entry is ever served (a torn entry planted on purpose is
recomputed), every answer equals the engine's, and the orphaned workers exit."""

import concurrent.futures
import glob
import os
import signal
import subprocess
import time

import numpy as np
import psutil

from tests.conftest import free_port
from tests.plugin.test_tensorboard_cli import TENSORBOARD, fetch, wait_for_xai
from tests.reliability.conftest import MODELS, SAMPLE_COUNT, SAMPLES, assert_maps_match, engine_reference

METHODS = [("gradient", {}), ("grad_cam", {}), ("occlusion", {"window": 7, "stride": 7})]
INDICES = list(range(SAMPLE_COUNT))


def bodies():
    """One attribution request per (model, method), all samples."""
    return [
        {"models": [{"run": run, "step": step}], "samples": SAMPLES, "indices": INDICES, "methods": [{"id": m, "params": p}]}
        for run, step in MODELS for m, p in METHODS
    ]  # fmt: skip


def start(logdir, cache_dir, log_path):
    """A tensorboard process with the plugin, ready; (process, base URL)."""
    port = free_port()
    command = [
        TENSORBOARD, "--logdir", logdir, "--host", "127.0.0.1", "--port", str(port), "--load_fast", "false",
        "--reload_interval", "1", "--xai_cache_dir", cache_dir, "--xai_workers", "2",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=open(log_path, "a"), stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:%d" % port
    wait_for_xai(base, process)
    return process, base + "/data/plugin/xai/"


def entries(cache_dir):
    """Final (renamed into place) cache entries: {path: bytes}."""
    found = glob.glob(os.path.join(cache_dir, "*", "*.npz"))
    return {p: open(p, "rb").read() for p in found if not os.path.basename(p).startswith(".tmp-")}


def post(url, body):
    """(status, JSON) of a compute POST."""
    return fetch(url, body, {"X-XAI-Request": "1"}, timeout=300)


def test_a_killed_tensorboard_leaves_no_half_written_entry_that_is_served(three_models, tmp_path):
    cache_dir, log = str(tmp_path / "cache"), str(tmp_path / "tensorboard.log")
    process, base = start(three_models, cache_dir, log)
    executor = concurrent.futures.ThreadPoolExecutor(len(bodies()))
    try:
        pending = [executor.submit(post, base + "attributions", body) for body in bodies()]
        deadline = time.monotonic() + 120
        while not entries(cache_dir) and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
        unfinished = sum(not p.done() for p in pending)
        process.send_signal(signal.SIGKILL)  # while jobs run and the cache writer is busy
        process.wait(30)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    assert workers and unfinished > 0
    for pid in workers:  # the orphans see their pipe close and exit (TimeoutExpired otherwise)
        try:
            psutil.Process(pid).wait(30)
        except psutil.NoSuchProcess:
            pass
    before = entries(cache_dir)
    assert before
    for path in before:  # whatever was renamed into place is whole
        with np.load(path, allow_pickle=False) as npz:
            assert {name: npz[name] for name in npz.files}
    torn = sorted(before)[0]
    with open(torn, "r+b") as f:  # what a crash during a non-atomic write would leave
        f.truncate(len(before[torn]) // 2)

    process, base = start(three_models, cache_dir, log)
    try:
        answers = [post(base + "attributions", body) for body in bodies()]
    finally:
        process.terminate()
        process.wait(30)
    jobs = [
        {"id": str(i), "op": "attribute", "run": b["models"][0]["run"], "step": 1, "samples": [SAMPLES["run"], SAMPLES["name"]],
         "indices": INDICES, "method": b["methods"][0]["id"], "params": b["methods"][0]["params"], "target": {"kind": "predicted"}}
        for i, b in enumerate(bodies())
    ]  # fmt: skip
    reference = engine_reference(three_models, jobs)
    for i, (status, answer) in enumerate(answers):
        assert status == 200, answer
        assert answer["cells"][0]["ok"] is True, answer
        assert_maps_match(answer["cells"][0], reference[str(i)])
    after = entries(cache_dir)
    with np.load(torn, allow_pickle=False) as npz:  # the torn entry was dropped and written again, whole
        assert npz.files
    assert all(after[p] == data for p, data in before.items() if p != torn)
    assert len(after) == len(MODELS) * len(METHODS) * SAMPLE_COUNT
