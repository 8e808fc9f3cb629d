"""The truthful picker's cost: POST applicability (a worker loads the checkpoint and checks every method on
it), then GET layers answering from that cached check, through a real `tensorboard`, against plain Keras
loading the same checkpoint file.

    .venv/bin/python bench/picker_bench.py [--size 96] [--repeats 3]

A MobileNetV2 base (weights=None) nested under a Dense(1) sigmoid head, logged at steps 0..repeats. Step 0
starts the worker (reported apart); each later step is asked once uncached (load + checks in a warm worker)
and once more (the cached answer), alternating with a plain `keras.saving.load_model` of the same file in
this process. Prints the medians and ratios and replaces the "picker" section of docs/benchmarks.md.
"""

import argparse
import datetime
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

from bench.server_bench import free_port, wait_ready, write_report  # noqa: E402


def build_logdir(root, size, steps):
    """Run 'mobilenet': the same architecture with new random weights at each step 0..steps-1; {step: file path}."""
    import tensorflow as tf

    from tb_xai_plugin import files, summary

    run = os.path.join(root, "mobilenet")
    writer = summary.create_file_writer(run)
    for step in range(steps):
        tf.keras.utils.set_random_seed(step)
        inputs = tf.keras.Input((size, size, 3))
        base = tf.keras.applications.MobileNetV2(input_shape=(size, size, 3), include_top=False, weights=None)
        pooled = tf.keras.layers.GlobalAveragePooling2D()(base(inputs))
        model = tf.keras.Model(inputs, tf.keras.layers.Dense(1, activation="sigmoid")(pooled), name="mobilenet")
        with writer.as_default():
            summary.checkpoint(model, step=step, class_names=["cat", "dog"])
    writer.close()
    return {m["step"]: os.path.join(files.checkpoints_dir(run), m["file"]) for m in files.checkpoint_manifests(run)}


def get(url, body=None):
    """Seconds of one GET (or, with a body, a compute POST), and its JSON."""
    import json

    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers={"X-XAI-Request": "1", "Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = json.loads(response.read())
    return time.perf_counter() - start, answer


def plain_load(path):
    """Seconds of keras.saving.load_model of the file, the plain library's way to have the model."""
    import keras

    start = time.perf_counter()
    keras.saving.load_model(path, compile=False)
    return time.perf_counter() - start


def main():
    """Parse the arguments, log, measure, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="picker_bench_")
    paths = build_logdir(os.path.join(root, "logs"), args.size, args.repeats + 1)
    port = free_port()
    command = [os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", os.path.join(root, "logs"),
               "--port", str(port), "--host", "127.0.0.1", "--xai_cache_dir", os.path.join(root, "cache")]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = "http://127.0.0.1:%d" % port
        wait_ready(base, process)
        layers = base + "/data/plugin/xai/layers?run=mobilenet&step=%d"
        check = base + "/data/plugin/xai/applicability"
        cold = get(check, {"run": "mobilenet", "step": 0})[0]
        _, body = get(layers % 0)
        assert body["methods_from"] == "model", body
        uncached, cached, plain = [], [], []
        for step in range(1, args.repeats + 1):
            plain.append(plain_load(paths[step]))
            uncached.append(get(check, {"run": "mobilenet", "step": step})[0])
            cached.append(get(layers % step)[0])
    finally:
        process.terminate()
        process.wait(30)
    plain_s, uncached_s, cached_s = (statistics.median(v) for v in (plain, uncached, cached))
    refused = sorted(m for m, a in body["methods"].items() if not a["ok"])
    lines = [
        "### Picker: POST applicability, then GET layers (%s, %s, %d repeats, load %.1f): MobileNetV2 base nested, %dx%d, Dense(1) sigmoid."
        % (datetime.date.today(), platform.machine(), args.repeats, os.getloadavg()[0], args.size, args.size),
        "",
        "| measure | seconds | ratio to plain `keras.saving.load_model` |",
        "|---|---|---|",
        "| plain load_model of the checkpoint | %.2f | 1.00x |" % plain_s,
        "| POST applicability, uncached (worker warm: load + every method's check) | %.2f | %.2fx |" % (uncached_s, uncached_s / plain_s),
        "| GET layers after it (the cached check) | %.3f | %.3fx |" % (cached_s, cached_s / plain_s),
        "| very first POST applicability (worker start included) | %.2f | - |" % cold,
        "",
        "Refused on this model: %s." % (", ".join(refused) or "none"),
    ]
    print("\n".join(lines))
    write_report("picker", lines)


if __name__ == "__main__":
    main()
