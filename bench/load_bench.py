"""Many clients at once: a mix of predictions and attributions over three models through a real
`tensorboard`, against the engine answering the same requests one by one in a plain process.

    .venv/bin/python bench/load_bench.py [--duration 120] [--clients 50] [--no-report]

Prints latency percentiles (p50 / p90 / p99), throughput, errors, the peak memory of TensorBoard
and its workers, and the ratio of the server's wall time to the plain library's time for the same
requests; writes them into docs/reliability.md. The short version of this load runs in
tests/reliability/test_load.py through `run_clients` and `specs` below.
"""

import argparse
import collections
import datetime
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = [("m1", 1), ("m2", 1), ("m3", 1)]
METHODS = ["gradient", "grad_cam"]
SCALE = {"type": "scale", "scale": 1.0 / 255.0, "offset": 0.0}
Record = collections.namedtuple("Record", "client spec request_id status body latency_s")


def specs(models, methods, count, block=2):
    """Distinct requests: per model, per block of `block` sample indices, one prediction and one
    attribution per method. Blocks are disjoint, so each spec is exactly one worker task."""
    out = []
    for run, step in models:
        for start in range(0, count - block + 1, block):
            indices = list(range(start, start + block))
            out.append({"kind": "predictions", "run": run, "step": step, "indices": indices})
            out.extend({"kind": "attributions", "run": run, "step": step, "indices": indices, "method": m} for m in methods)
    return out


def request_body(spec, samples, request_id):
    """The JSON body of one spec (docs/http_api.md)."""
    body = {"models": [{"run": spec["run"], "step": spec["step"]}], "samples": samples, "indices": spec["indices"]}
    if spec["kind"] == "predictions":
        return dict(body, top_k=3, request_id=request_id)
    return dict(body, methods=[{"id": spec["method"]}], request_id=request_id)


def post(url, body, timeout_s=300):
    """(status, parsed JSON) of one POST with the plugin's header."""
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", "X-XAI-Request": "1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def run_clients(base, all_specs, samples, clients, duration_s, seed=0):
    """Records of `clients` threads, each posting random specs one after another for `duration_s`;
    (records, sent): a request that raised (connection reset, timeout) is sent but has no record."""
    deadline = time.monotonic() + duration_s
    records, sent, lock = [], collections.Counter(), threading.Lock()

    def client(number):
        rng = random.Random(seed * 1000 + number)
        n = 0
        while time.monotonic() < deadline:
            index = rng.randrange(len(all_specs))
            request_id = "c%d-%d" % (number, n)
            n += 1
            with lock:
                sent[number] += 1
            start = time.perf_counter()
            status, body = post(base + all_specs[index]["kind"], request_body(all_specs[index], samples, request_id))
            record = Record(number, index, request_id, status, body, time.perf_counter() - start)
            with lock:
                records.append(record)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records, sum(sent.values())


def percentiles(values, points=(50, 90, 99)):
    """{p: value} by the nearest-rank method."""
    ordered = sorted(values)
    return {p: ordered[min(len(ordered) - 1, max(0, -(-p * len(ordered) // 100) - 1))] for p in points}


class MemoryMonitor:
    """Samples measure() every `interval_s` in a thread; `peak` is the largest value seen."""

    def __init__(self, measure, interval_s=0.2):
        self.measure, self.interval_s, self.peak = measure, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _loop(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.measure())
            self._stop.wait(self.interval_s)


def tree_rss(pid):
    """Resident bytes of process `pid` and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total


def build_logdir(root, count):
    """Runs m1, m2, m3 with a small CNN each (32x32x3 -> 10 classes); m1 holds `count` random images."""
    import numpy as np
    import tensorflow as tf

    from tb_xai_plugin import summary

    images = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    for seed, (run, step) in enumerate(MODELS):
        tf.keras.utils.set_random_seed(seed)
        inputs = tf.keras.Input((32, 32, 3))
        x = tf.keras.layers.Conv2D(16, 3, activation="relu")(inputs)
        x = tf.keras.layers.Conv2D(16, 3, activation="relu")(x)
        x = tf.keras.layers.GlobalAveragePooling2D()(x)
        model = tf.keras.Model(inputs, tf.keras.layers.Dense(10, activation="softmax")(x))
        writer = summary.create_file_writer(os.path.join(root, run))
        with writer.as_default():
            if run == "m1":
                summary.samples("val", images, step=0, labels=np.arange(count) % 10)
            summary.checkpoint(model, step=step, preprocessing=SCALE)
        writer.close()


def run_direct(logdir):
    """--direct mode: jobs (specs) as JSON on stdin; prints the plain engine's seconds per job."""
    import importlib

    import numpy as np

    from tb_xai_plugin import engine, files, metadata

    engine.enable_graph_mode()
    loading = importlib.import_module("tb_xai_plugin.engine.backends")
    images = np.load(files.sample_paths(os.path.join(logdir, "m1"), "val")[0])["images"]
    models, seconds = {}, []
    for spec in json.load(sys.stdin):
        start = time.perf_counter()
        key = (spec["run"], spec["step"])
        if key not in models:
            run_dir = os.path.join(logdir, spec["run"])
            manifest = files.read_manifest(files.checkpoint_paths(run_dir, spec["step"], "h5")[1], metadata.KIND_CHECKPOINT)
            models[key] = loading.load_checkpoint(os.path.join(files.checkpoints_dir(run_dir), manifest["file"]), manifest)
        x = images[spec["indices"]]
        if spec["kind"] == "predictions":
            engine.predict(models[key], x, top_k=3)
        else:
            engine.attribute(models[key], spec["method"], x)
        seconds.append(time.perf_counter() - start)
    print(json.dumps(seconds))


def direct_seconds(logdir, jobs):
    """The plain engine's seconds for each job, in a graph-mode subprocess (cold loads included)."""
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--direct", logdir],
        input=json.dumps(jobs), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def serve(logdir, cache_dir, args):
    """A `tensorboard` process on a free port with the plugin's limits; (process, base URL)."""
    from bench.server_bench import free_port, wait_ready

    port = free_port()
    command = [
        os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", logdir, "--host", "127.0.0.1",
        "--port", str(port), "--load_fast", "false", "--xai_cache_dir", cache_dir, "--xai_workers", str(args.workers),
        "--xai_cache_mb", str(args.cache_mb), "--xai_worker_memory_mb", str(args.worker_memory_mb),
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % port
    wait_ready(base, process)
    return process, base + "/data/plugin/xai/"


def report(args, all_specs, records, sent, peak, server_s, plain_s):
    """Markdown lines of one run."""
    ok = [r for r in records if r.status == 200]
    lat = percentiles([r.latency_s * 1000 for r in records])
    by_kind = {
        kind: percentiles([r.latency_s * 1000 for r in records if all_specs[r.spec]["kind"] == kind])
        for kind in ("predictions", "attributions")
    }
    budget = args.workers * args.worker_memory_mb + args.cache_mb
    lines = [
        "",
        "Run of %s on %s (%d CPUs): %d clients for %d s, %d workers, %s." % (
            datetime.date.today(), platform.machine(), os.cpu_count(), args.clients, args.duration, args.workers,
            "methods " + ", ".join(METHODS)),
        "",
        "| measure | value |",
        "|---|---|",
        "| requests sent / answered / 200 | %d / %d / %d |" % (sent, len(records), len(ok)),
        "| throughput | %.1f requests/s |" % (len(records) / args.duration),
        "| latency p50 / p90 / p99 (all) | %.0f / %.0f / %.0f ms |" % (lat[50], lat[90], lat[99]),
    ]  # fmt: skip
    for kind, p in by_kind.items():
        lines.append("| latency p50 / p90 / p99 (%s) | %.0f / %.0f / %.0f ms |" % (kind, p[50], p[90], p[99]))
    lines += [
        "| peak RSS of TensorBoard + workers | %d MiB (workers' limit %d MiB each, cache %d MiB: %d MiB) |"
        % (peak >> 20, args.worker_memory_mb, args.cache_mb, budget),
        "| server wall time / plain engine on the same requests one by one | %.1f s / %.1f s = %.3f |"
        % (server_s, plain_s, server_s / plain_s),
    ]
    return lines


MARK_BEGIN, MARK_END = "<!-- load_bench:begin -->", "<!-- load_bench:end -->"


def write_report(lines):
    """Replace the text between the load_bench marks in docs/reliability.md."""
    path = os.path.join(ROOT, "docs", "reliability.md")
    text = open(path, encoding="utf-8").read()
    head, rest = text.split(MARK_BEGIN, 1)
    tail = rest.split(MARK_END, 1)[1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(head + MARK_BEGIN + "\n" + "\n".join(lines).strip("\n") + "\n" + MARK_END + tail)


def main():
    """Parse the arguments, build the logdir, run the load and the plain engine, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=120)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache_mb", type=int, default=256)
    parser.add_argument("--worker_memory_mb", type=int, default=2048)
    parser.add_argument("--direct", metavar="LOGDIR", help=argparse.SUPPRESS)
    parser.add_argument("--no-report", action="store_true", help="do not write docs/reliability.md")
    args = parser.parse_args()
    if args.direct:
        return run_direct(args.direct)
    with tempfile.TemporaryDirectory() as tmp:
        logdir, cache_dir = os.path.join(tmp, "logs"), os.path.join(tmp, "cache")
        build_logdir(logdir, args.samples)
        all_specs = specs(MODELS, METHODS, args.samples)
        samples = {"run": "m1", "name": "val"}
        process, base = serve(logdir, cache_dir, args)
        try:
            start = time.monotonic()
            with MemoryMonitor(lambda: tree_rss(process.pid)) as monitor:
                records, sent = run_clients(base, all_specs, samples, args.clients, args.duration)
            server_s = time.monotonic() - start
        finally:
            process.terminate()
            process.wait(30)
        if not records:
            raise SystemExit("no request was answered")
        seconds = direct_seconds(logdir, all_specs)  # per spec; the first of each model includes its load
        plain_s = sum(seconds[r.spec] for r in records)
        lines = report(args, all_specs, records, sent, monitor.peak, server_s, plain_s)
        print("\n".join(lines))
        failed = [r for r in records if r.status != 200]
        if failed:
            print("non-200 answers: %s" % collections.Counter(r.status for r in failed))
        if not args.no_report:
            write_report(lines)


if __name__ == "__main__":
    main()
