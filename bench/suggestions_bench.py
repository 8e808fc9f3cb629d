"""The suggestion panel's cost: POST suggestions for 10,000 samples x 3 small models through a real
`tensorboard`, against plain Keras `model.predict` of the same 3 checkpoints on the same images.

    .venv/bin/python bench/suggestions_bench.py [--count 10000] [--repeats 3] [--layer conv2b]

Measures the first request (worker start, 3 model loads: reported apart), warm-but-uncached
requests (worker and models loaded, each on a sample set it has not seen: every probability is
computed), and a cached repeat; prints the ratio warm / direct (goal <= 1.2) and appends the table
to docs/benchmarks.md. Direct and HTTP calls alternate, so load from other processes hits both alike.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench.server_bench import free_port, post, wait_ready, write_report  # noqa: E402

ARCHITECTURES = ("cnn", "resnet", "sepconv")
SHAPE = (28, 28, 1)
CLASSES = 10
SCALE = {"type": "scale", "scale": 1 / 255.0, "offset": 0.0}


def set_name(i):
    """The i-th sample set: 0 warms up (the cold request), the others are each asked once warm."""
    return "warmup" if i == 0 else "set%d" % i


def build_logdir(root, count, sets):
    """Runs cnn / resnet / sepconv (the demo's three architectures, step 1, random weights) and,
    on run 'cnn', `sets` sample sets of `count` random 28x28x1 images with labels."""
    import numpy as np
    import tensorflow as tf

    from demo import models
    from tb_xai_plugin import summary

    rng = np.random.default_rng(0)
    for n, architecture in enumerate(ARCHITECTURES):
        tf.keras.utils.set_random_seed(n)
        model = models.build(architecture, SHAPE, CLASSES, architecture)
        writer = summary.create_file_writer(os.path.join(root, architecture))
        with writer.as_default():
            summary.checkpoint(model, step=1, preprocessing=SCALE)
            if architecture == "cnn":
                for i in range(sets):
                    images = rng.integers(0, 256, (count,) + SHAPE, dtype=np.uint8)
                    labels = rng.integers(0, CLASSES, count)
                    summary.samples(set_name(i), images, labels=labels, step=0)
        writer.close()


def load_direct(logdir):
    """The three checkpoints loaded by plain Keras (eager, as a user would) from their .h5 files."""
    import json

    import tensorflow as tf

    loaded = []
    for architecture in ARCHITECTURES:
        folder = os.path.join(logdir, architecture, "plugins", "xai", "checkpoints")
        with open(os.path.join(folder, "step-000000001.json")) as f:
            manifest = json.load(f)
        loaded.append(tf.keras.models.load_model(os.path.join(folder, manifest["file"]), compile=False))
    return loaded


def read_images(logdir, name):
    """The uint8 images of a sample set, from its .npz."""
    import numpy as np

    with np.load(os.path.join(logdir, "cnn", "plugins", "xai", "samples", name + ".npz")) as npz:
        return npz["images"]


def time_direct(loaded, images, batch):
    """Seconds for plain `model.predict` of every model on the images (scaled as the manifest says)."""
    import numpy as np

    start = time.perf_counter()
    x = images.astype(np.float32) * np.float32(SCALE["scale"])
    for model in loaded:
        model.predict(x, batch_size=batch, verbose=0)
    return time.perf_counter() - start


def start_tensorboard(logdir, cache_dir):
    """(base URL, process) of a real tensorboard on a free port, once the plugin lists the runs."""
    port = free_port()
    command = [
        os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", logdir, "--host", "127.0.0.1",
        "--port", str(port), "--load_fast", "false", "--xai_cache_dir", cache_dir,
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = "http://127.0.0.1:%d" % port
    try:
        wait_ready(base, process)
    except BaseException:
        process.terminate()
        raise
    return base, process


def suggestions_body(name, layer=None):
    """POST suggestions for the three models on sample set `name` (with a layer's activation if given)."""
    return {
        "models": [{"run": a, "step": 1} for a in ARCHITECTURES],
        "samples": {"run": "cnn", "name": name},
        "layer": layer,
    }


def checked_post(url, body, count):
    """Seconds of one POST suggestions; SystemExit unless every model answered for all `count` samples."""
    seconds, answer = post(url, body)
    failed = [m.get("error") for m in answer["per_model"] if not m["ok"]]
    if failed or answer["count"] != count or len(answer["per_sample"]["mean_top_score"]) != count:
        raise SystemExit("suggestions failed: %s" % failed)
    if body["layer"] is not None and not (answer["activation"] or {}).get("ok"):
        raise SystemExit("activation failed: %s" % answer["activation"])
    return seconds


def start_graph_direct(logdir, batch):
    """A subprocess that loads the checkpoints with Keras in graph mode (the worker's mode) and, per
    sample-set name read from stdin, prints the seconds of time_direct; after it printed 'ready'."""
    direct = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--direct", logdir, "--batch", str(batch)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    if direct.stdout.readline().strip() != "ready":
        raise SystemExit("the graph-mode direct process failed")
    return direct


def ask_direct(direct, name):
    """Seconds the graph-mode subprocess took for model.predict x 3 on sample set `name`."""
    direct.stdin.write(name + "\n")
    direct.stdin.flush()
    return float(direct.stdout.readline())


def run_direct(logdir, batch):
    """--direct mode: graph mode, load, warm up, print 'ready'; then time each named sample set."""
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    loaded = load_direct(logdir)
    time_direct(loaded, read_images(logdir, set_name(0)), batch)
    print("ready", flush=True)
    for line in sys.stdin:
        print(time_direct(loaded, read_images(logdir, line.strip()), batch), flush=True)


def measure(logdir, cache_dir, count, repeats, batch, layer):
    """{measure: seconds}: cold, then per warm set the direct calls and an HTTP call alternately, then
    (with a layer) HTTP calls on further unseen sets, then cached repeats."""
    loaded = load_direct(logdir)
    time_direct(loaded, read_images(logdir, set_name(0)), batch)  # traces predict once per model
    direct = start_graph_direct(logdir, batch)
    base, process = start_tensorboard(logdir, cache_dir)
    url = base + "/data/plugin/xai/suggestions"
    try:
        out = {"cold": checked_post(url, suggestions_body(set_name(0)), count)}
        eager, graph, warm, with_layer = [], [], [], []
        for i in range(1, repeats + 1):
            eager.append(time_direct(loaded, read_images(logdir, set_name(i)), batch))
            graph.append(ask_direct(direct, set_name(i)))
            warm.append(checked_post(url, suggestions_body(set_name(i)), count))
        if layer:
            checked_post(url, suggestions_body(set_name(0), layer), count)  # builds the activation op once
            for i in range(repeats + 1, 2 * repeats + 1):
                with_layer.append(checked_post(url, suggestions_body(set_name(i), layer), count))
        cached = [checked_post(url, suggestions_body(set_name(1)), count) for _ in range(repeats)]
    finally:
        process.terminate()
        process.wait(30)
        direct.stdin.close()
        direct.wait(30)
    median = statistics.median
    out.update(eager=median(eager), graph=median(graph), warm=median(warm), cached=median(cached))
    if with_layer:
        out["layer"] = median(with_layer)
    return out


def report_lines(args, out):
    """The markdown table of one run."""
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        "",
        "### Suggestions: %d samples x 3 models at 28x28x1 (%s, %d CPUs, load %.1f, %s)"
        % (args.count, platform.machine(), os.cpu_count(), os.getloadavg()[0], when),
        "",
        "| measure | median of %d | goal |" % args.repeats,
        "|---|---|---|",
        "| model.predict x 3, direct, eager (TF2 default) | %.2f s | |" % out["eager"],
        "| model.predict x 3, direct, graph mode (the worker's mode) | %.2f s | |" % out["graph"],
        "| POST suggestions, warm, uncached | %.2f s | |" % out["warm"],
        "| **ratio warm / eager predict** | **%.2f** | <= 1.2 |" % (out["warm"] / out["eager"]),
        "| **ratio warm / graph-mode predict** | **%.2f** | <= 1.2 |" % (out["warm"] / out["graph"]),
    ]
    if "layer" in out:
        lines.append("| POST suggestions with layer %s, warm, uncached | %.2f s (%.2f x graph-mode predict) | |"
                     % (args.layer, out["layer"], out["layer"] / out["graph"]))  # fmt: skip
    lines += [
        "| POST suggestions, repeated (cache) | %.0f ms | |" % (out["cached"] * 1000),
        "| first POST (worker start, 3 model loads) | %.2f s | |" % out["cold"],
    ]
    return lines


def main():
    """Parse the arguments, build the logdir, measure, print and record."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3, choices=range(1, 9))
    parser.add_argument("--batch", type=int, default=256, help="model.predict's batch size (the worker's chunk)")
    parser.add_argument("--layer", default="conv2b", help="first model's layer for the activation row; '' for none")
    parser.add_argument("--direct", metavar="LOGDIR", help=argparse.SUPPRESS)
    parser.add_argument("--no-report", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args()
    if args.direct:
        return run_direct(args.direct, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        logdir, cache_dir = os.path.join(tmp, "logs"), os.path.join(tmp, "cache")
        build_logdir(logdir, args.count, 2 * args.repeats + 1)
        out = measure(logdir, cache_dir, args.count, args.repeats, args.batch, args.layer)
    lines = report_lines(args, out)
    print("\n".join(lines))
    if not args.no_report:
        write_report("suggestions %d samples" % args.count, lines)


if __name__ == "__main__":
    main()
