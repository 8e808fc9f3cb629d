"""The server's overhead: one warm attribution through a real `tensorboard` over HTTP, against the
engine called directly on the same batch in a plain process, and a repeated request from the cache.

    .venv/bin/python bench/server_bench.py [--method gradient] [--batch 16] [--size 64] [--repeats 5]

Prints the medians and the ratio (goal: HTTP / direct <= 1.1; cached < 50 ms) and appends them to
docs/benchmarks.md. Both sides run on this machine in the same invocation; the direct side runs in
a subprocess because the engine needs graph mode and logging needs eager mode.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def build_logdir(root, size, batch):
    """A run 'bench' with a small VGG-like CNN (step 1) and `batch` random images of size x size x 3."""
    import numpy as np
    import tensorflow as tf

    from tb_xai_plugin import summary

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((size, size, 3))
    x = inputs
    for filters in (32, 64, 64):
        x = tf.keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = tf.keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = tf.keras.layers.MaxPooling2D()(x)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(128, activation="relu")(x)
    outputs = tf.keras.layers.Dense(10, activation="softmax")(x)
    model = tf.keras.Model(inputs, outputs, name="bench_cnn")
    images = np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
    writer = summary.create_file_writer(os.path.join(root, "bench"))
    with writer.as_default():
        summary.samples("bench", images, step=0)
        summary.checkpoint(model, step=1, preprocessing={"type": "scale", "scale": 1 / 255.0, "offset": 0.0})
    writer.close()


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def target(index):
    """Each measured request explains another class: the same work, a new cache key."""
    return {"kind": "class", "index": index}


def post(url, body):
    """(seconds, parsed JSON) of one POST with the plugin's header."""
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", "X-XAI-Request": "1"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        parsed = json.loads(response.read())
    return time.perf_counter() - start, parsed


def wait_ready(base, process, timeout_s=180):
    """Wait until the plugin lists the run."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("tensorboard exited")
        try:
            with urllib.request.urlopen(base + "/data/plugin/xai/runs", timeout=5) as response:
                if json.loads(response.read())["runs"]:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SystemExit("tensorboard did not list the run in time")


def measure(logdir, cache_dir, method, batch, repeats):
    """(cold HTTP, median direct, median warm HTTP, median cached HTTP); direct and HTTP calls alternate,
    so that load from other processes on the machine hits both sides alike."""
    direct = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--direct", logdir, "--method", method],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    if direct.stdout.readline().strip() != "ready":
        raise SystemExit("the direct engine process failed")
    port = free_port()
    command = [
        os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", logdir, "--host", "127.0.0.1",
        "--port", str(port), "--load_fast", "false", "--xai_cache_dir", cache_dir,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = "http://127.0.0.1:%d" % port
        wait_ready(base, process)
        url = base + "/data/plugin/xai/attributions"
        body = {
            "models": [{"run": "bench", "step": 1}],
            "samples": {"run": "bench", "name": "bench"},
            "indices": list(range(batch)),
            "methods": [{"id": method}],
        }
        cold, answer = post(url, dict(body, target=target(0)))
        if not answer["cells"][0]["ok"]:
            raise SystemExit("attribution failed: %s" % answer["cells"][0]["error"])
        post(url, dict(body, target=target(1)))  # a second warm-up: graph and caches settled
        direct_times, warm = [], []
        for i in range(repeats):
            direct.stdin.write("%d\n" % (2 + i))
            direct.stdin.flush()
            direct_times.append(float(direct.stdout.readline()))
            warm.append(post(url, dict(body, target=target(2 + i)))[0])
        cached = [post(url, dict(body, target=target(2)))[0] for _ in range(repeats)]
        return cold, statistics.median(direct_times), statistics.median(warm), statistics.median(cached)
    finally:
        process.terminate()
        process.wait(30)
        direct.stdin.close()
        direct.wait(30)


def run_direct(logdir, method):
    """--direct mode: load the checkpoint, warm up twice, print 'ready'; then per class index read
    from stdin, time one attribute call on the batch and print its seconds."""
    import importlib

    import numpy as np

    from tb_xai_plugin import engine

    engine.enable_graph_mode()
    loading = importlib.import_module("tb_xai_plugin.engine.backends")
    attribute = importlib.import_module("tb_xai_plugin.engine.attribution")
    folder = os.path.join(logdir, "bench", "plugins", "xai")
    with open(os.path.join(folder, "checkpoints", "step-000000001.json")) as f:
        manifest = json.load(f)
    model = loading.load_checkpoint(os.path.join(folder, "checkpoints", manifest["file"]), manifest)
    images = np.load(os.path.join(folder, "samples", "bench.npz"))["images"]
    for index in (0, 1):
        attribute.attribute(model, method, images, target=target(index))
    print("ready", flush=True)
    for line in sys.stdin:
        start = time.perf_counter()
        attribute.attribute(model, method, images, target=target(int(line)))
        print(time.perf_counter() - start, flush=True)


def write_report(key, lines):
    """Replace this bench's section `key` in docs/benchmarks.md by this run's lines."""
    from bench import report

    report.replace_section(key, "\n".join(lines))


def main():
    """Parse the arguments, build the logdir, measure, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="gradient")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7, choices=range(1, 9), help="1-8 (one class each)")
    parser.add_argument("--direct", metavar="LOGDIR", help=argparse.SUPPRESS)
    parser.add_argument("--no-report", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args()
    if args.direct:
        return run_direct(args.direct, args.method)
    with tempfile.TemporaryDirectory() as tmp:
        logdir, cache_dir = os.path.join(tmp, "logs"), os.path.join(tmp, "cache")
        build_logdir(logdir, args.size, args.batch)
        cold, direct, warm, cached = measure(logdir, cache_dir, args.method, args.batch, args.repeats)
    ratio = warm / direct
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        "",
        "### Server: %s, batch %d at %dx%dx3, VGG-like CNN (%s, %d CPUs, %s)"
        % (args.method, args.batch, args.size, args.size, platform.machine(), os.cpu_count(), when),
        "",
        "| measure | median of %d | goal |" % args.repeats,
        "|---|---|---|",
        "| engine.attribute, direct, warm | %.3f s | |" % direct,
        "| POST attributions over HTTP, warm (another class: computed) | %.3f s | |" % warm,
        "| **ratio HTTP / direct** | **%.2f** | <= 1.1 |" % ratio,
        "| POST attributions, repeated (cache) | %.1f ms | < 50 ms |" % (cached * 1000),
        "| first POST (worker start, model load, graph build) | %.2f s | |" % cold,
    ]
    print("\n".join(lines))
    if not args.no_report:
        write_report("server %s batch %d size %d" % (args.method, args.batch, args.size), lines)


if __name__ == "__main__":
    main()
