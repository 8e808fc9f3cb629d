"""A 100,000-image sample set (64x64x3 uint8, 1.2 GB) through a real `tensorboard`: POST suggestions for
3 small models against plain Keras `model.predict` of the same 3 checkpoints on the same images, and what
the TensorBoard process and its worker hold in memory meanwhile.

    .venv/bin/python bench/scale_bench.py [--count 100000] [--no-report]

The direct side reads the set in the same chunks of rows the worker reads (the set does not fit a
float32 array in memory: 4.9 GB) and runs `model.predict` on each, and, as a stricter reference, the
chunks through the model in a `tf.function`, one call each (with models this small, model.predict's
own work per call outweighs the forward pass); both run before and after the server, and their
means are reported, so that load from other processes hits both sides alike. The server side is a warm worker
(started and the models loaded on a small set of the same shape) computing every probability of the
big set once. Memory: the TensorBoard process's resident memory before and after it served an image
and the suggestions of the big set, and the worker's peak resident memory (polled).
Replaces its section of docs/benchmarks.md.
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.server_bench import free_port, post, wait_ready, write_report  # noqa: E402

SHAPE = (64, 64, 3)
CLASSES = 10
SCALE = {"type": "scale", "scale": 1 / 255.0, "offset": 0.0}
RUNS = ("conv4", "conv8", "sep8")
MB = 2**20


def small_model(kind, seed):
    """A small 64x64x3 classifier: a stride-4 conv (4 or 8 filters, or separable), pooling, dense(10, softmax)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input(SHAPE)
    if kind == "sep8":
        x = tf.keras.layers.SeparableConv2D(8, 3, strides=4, activation="relu", name="conv")(inputs)
    else:
        x = tf.keras.layers.Conv2D(int(kind[4:]), 3, strides=4, activation="relu", name="conv")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf.keras.layers.Dense(CLASSES, activation="softmax", name="dense")(x)
    return tf.keras.Model(inputs, outputs, name=kind)


def build_logdir(root, count):
    """Runs conv4 / conv8 / sep8 (step 1, random weights); run conv4 holds sample sets 'warm' (256) and 'big' (`count`)."""
    import numpy as np
    import tensorflow as tf

    from tb_xai_plugin import summary

    rng = np.random.default_rng(0)
    for n, kind in enumerate(RUNS):
        writer = summary.create_file_writer(os.path.join(root, kind))
        with writer.as_default():
            summary.checkpoint(small_model(kind, n), step=1, preprocessing=SCALE)
            if kind == RUNS[0]:
                for name, size in (("warm", 256), ("big", count)):
                    images = rng.integers(0, 256, (size,) + SHAPE, dtype=np.uint8)
                    summary.samples(name, images, labels=rng.integers(0, CLASSES, size), step=0)
                    del images
        writer.close()
    tf.keras.backend.clear_session()


def load_direct(logdir):
    """(3 Keras models, their tf.function forward passes, the big set's reader and manifest), traced once."""
    import json

    import numpy as np
    import tensorflow as tf

    from tb_xai_plugin import files

    loaded = []
    for kind in RUNS:
        folder = os.path.join(logdir, kind, "plugins", "xai", "checkpoints")
        with open(os.path.join(folder, "step-000000001.json")) as f:
            loaded.append(tf.keras.models.load_model(os.path.join(folder, json.load(f)["file"]), compile=False))
    samples = os.path.join(logdir, RUNS[0], "plugins", "xai", "samples")
    with open(os.path.join(samples, "big.json")) as f:
        manifest = json.load(f)
    reader = files.open_sample_set(os.path.join(samples, "big.npz"), manifest["sha256"])
    forwards = [tf.function(model.__call__, reduce_retracing=True) for model in loaded]
    for model, forward in zip(loaded, forwards):
        model.predict(reader.range(0, 256).astype(np.float32) / np.float32(255), batch_size=256, verbose=0)
        forward(reader.range(0, 256).astype(np.float32) / np.float32(255))
    return loaded, forwards, reader, manifest


def direct_seconds(direct):
    """(model.predict seconds, tf.function forward seconds) of the 3 models over the big set, read in the
    worker's chunks of rows: predict in batches of 256, the forward pass one call per chunk."""
    import numpy as np

    from tb_xai_plugin.plugin import service

    loaded, forwards, reader, manifest = direct
    scale = np.float32(SCALE["scale"])
    timings = []
    for run in (lambda m, f, x: m.predict(x, batch_size=256, verbose=0), lambda m, f, x: f(x).numpy()):
        start = time.perf_counter()
        for model, forward in zip(loaded, forwards):
            for a, b in service.chunk_bounds(manifest):
                run(model, forward, reader.range(a, b).astype(np.float32) * scale)
        timings.append(time.perf_counter() - start)
    return tuple(timings)


def rss(pid):
    """Resident memory of process `pid` in bytes."""
    import psutil

    return psutil.Process(pid).memory_info().rss


class PeakWorkerMemory:
    """Polls the largest resident memory among a process's children (the worker) until stopped."""

    def __init__(self, pid):
        import psutil

        self.process, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self):
        """Record the children's largest RSS every 50 ms."""
        import psutil

        while not self._stop.wait(0.05):
            try:
                self.peak = max([self.peak] + [c.memory_info().rss for c in self.process.children(recursive=True)])
            except psutil.Error:
                pass

    def stop(self):
        """Stop polling; the peak in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak


def body(name, samples_run=RUNS[0]):
    """POST suggestions for the 3 models on sample set `name`."""
    return {"models": [{"run": kind, "step": 1} for kind in RUNS], "samples": {"run": samples_run, "name": name}}


def first_image_seconds(base):
    """Seconds of the first GET image of the big set (its sha256 is checked then, once)."""
    start = time.perf_counter()
    with urllib.request.urlopen(base + "/data/plugin/xai/image?run=%s&samples=big&index=7" % RUNS[0], timeout=600) as r:
        r.read()
    return time.perf_counter() - start


def served(logdir, cache_dir, count):
    """{measure: value} from a real tensorboard with one worker: warm-up, first image, suggestions, memory."""
    port = free_port()
    command = [
        os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", logdir, "--host", "127.0.0.1",
        "--port", str(port), "--load_fast", "false", "--xai_cache_dir", cache_dir, "--xai_workers", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % port
    url = base + "/data/plugin/xai/suggestions"
    try:
        wait_ready(base, process)
        cold, _ = post(url, body("warm"))  # worker start, 3 model loads, every route's code loaded
        before = rss(process.pid)
        image = first_image_seconds(base)
        peak = PeakWorkerMemory(process.pid)
        warm, answer = post(url, body("big"))
        worker_peak = peak.stop()
        if answer["count"] != count or not all(m["ok"] for m in answer["per_model"]):
            raise SystemExit("suggestions failed: %s" % [m.get("error") for m in answer["per_model"]])
        grown = rss(process.pid) - before
    finally:
        process.terminate()
        process.wait(60)
    return {"cold": cold, "image": image, "warm": warm, "tb_growth": grown, "tb_before": before, "worker_peak": worker_peak}


def report_lines(count, direct, forward, out):
    """The markdown table of one run."""
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    gigabytes = count * 64 * 64 * 3 / 1e9
    return [
        "",
        "### %d samples x 3 models at 64x64x3 (%.2f GB set; %s, %d CPUs, load %.1f, %s)"
        % (count, gigabytes, platform.machine(), os.cpu_count(), os.getloadavg()[0], when),
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        "| model.predict x 3, direct, the set read in chunks (mean of a run before and after the server) | %.1f s | |" % direct,
        "| forward pass x 3 in a tf.function, direct, one call per chunk (mean, likewise) | %.1f s | |" % forward,
        "| POST suggestions, warm worker, uncached | %.1f s | |" % out["warm"],
        "| **ratio suggestions / direct model.predict** | **%.2f** | <= 1.2 |" % (out["warm"] / direct),
        "| ratio suggestions / direct tf.function forward | %.2f | |" % (out["warm"] / forward),
        "| TensorBoard RSS growth while serving the set | %.0f MB (from %.0f MB) | < 300 MB |" % (out["tb_growth"] / MB, out["tb_before"] / MB),
        "| worker peak RSS (TensorFlow, 3 models, one chunk of rows) | %.0f MB | |" % (out["worker_peak"] / MB),
        "| first GET image of the set (its sha256 checked once) | %.1f s | |" % out["image"],
        "| first POST (worker start, 3 model loads, a 256-image set) | %.1f s | |" % out["cold"],
    ]


def main():
    """Parse the arguments, build the logdir, measure, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--no-report", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        logdir, cache_dir = os.path.join(tmp, "logs"), os.path.join(tmp, "cache")
        build_logdir(logdir, args.count)
        direct = load_direct(logdir)
        before = direct_seconds(direct)  # direct runs before and after the server, so other load hits both alike
        out = served(logdir, cache_dir, args.count)
        after = direct_seconds(direct)
    lines = report_lines(args.count, (before[0] + after[0]) / 2, (before[1] + after[1]) / 2, out)
    print("\n".join(lines))
    if not args.no_report:
        write_report("scale %d samples" % args.count, lines)


if __name__ == "__main__":
    main()
