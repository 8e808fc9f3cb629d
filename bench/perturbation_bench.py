"""Speed of LIME, Shapley sampling, prediction difference and DeepLIFT on VGG16-sized input, as ratios.

Each figure is measured in this run against plain Keras doing a forward pass of the same batch
(VGG16, weights=None, 224x224x3): 'x forward' = method time / forward time of the batch. The
perturbation methods also show their cost per model evaluation they make ('x rows'): their time
divided by (images they score x forward time per image); near 1 means building, batching and
regressing the copies costs little beside the network itself.

    python bench/perturbation_bench.py [--batch 2] [--no-report]

Replaces its section of docs/benchmarks.md unless --no-report. PatternNet is not measured here:
it refuses VGG16 (fitting would keep ~10 GB of statistics; see pattern.MAX_FIT_BYTES).
"""

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from bench import report as report_sections  # noqa: E402
from tb_xai_plugin import engine, model_info  # noqa: E402

# (method, params, model evaluations per image under those params)
CASES = (
    ("lime", {"samples": 64, "segments": 50}, 64),
    ("shapley_sampling", {"permutations": 2, "segments": 16, "segmentation": "grid"}, 2 * 17),
    ("prediction_difference", {"window": 28, "stride": 28, "samples": 2, "sampling": "marginal"}, 64 * 2 + 1),
    ("prediction_difference", {"window": 28, "stride": 28, "samples": 2, "sampling": "conditional"}, 64 * 2 + 1),
    ("deeplift", {"reference": "zero"}, None),
    ("deeplift", {"reference": "blur"}, None),
)


def load_vgg16(directory):
    """VGG16 with random weights, saved as .h5 with a manifest and loaded by the engine."""
    import tensorflow as tf

    keras_model = tf.keras.applications.VGG16(weights=None)
    path = os.path.join(directory, "vgg16.h5")
    keras_model.save(path, save_format="h5")
    manifest = {
        "format": "h5",
        "input_shape": [224, 224, 3],
        "num_classes": 1000,
        "preprocessing": {"type": "none"},
        "output_activation": model_info.output_activation(keras_model),
        "layers": model_info.describe_layers(keras_model),
        "weights_sha256": model_info.weights_checksum(keras_model.get_weights()),
    }
    return engine.load_checkpoint(path, manifest)


def timed(work):
    """(seconds, result) of one call of work()."""
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def measure(batch):
    """[(label, seconds per image, x forward, x rows or None)] and the forward time, VGG16 on `batch` images."""
    from tb_xai_plugin.engine import backends, registry

    with tempfile.TemporaryDirectory() as directory:
        model = load_vgg16(directory)
    x = np.random.default_rng(0).uniform(0, 255, (batch, 224, 224, 3)).astype(np.float32)
    targets = np.zeros(batch, np.int64)

    def forward():
        with model.in_graph():
            return model.keras_model.predict(x, batch_size=batch, verbose=0)

    forward()  # warm
    plain = min(timed(forward)[0] for _ in range(3))
    rows = []
    for method_id, params, evaluations in CASES:
        method = registry.get(method_id)
        params = method.validate_params(params)
        work = lambda: backends.implementation(model.backend, method_id).compute(model, x, targets, params, None, None, np.random.default_rng(0))  # noqa: E731
        if evaluations is None:
            work()  # build the graph first: the warm time is what a user waits for after the first map
        seconds, maps = timed(work)
        assert np.isfinite(maps).all()
        per_rows = seconds / (evaluations * batch * plain / batch) if evaluations else None
        label = "%s %s" % (method_id, ", ".join("%s=%s" % item for item in sorted(params.items())))
        rows.append((label, seconds / batch, seconds / plain, per_rows))
        print("%-100s %7.2fs/image  %7.1fx forward  %s" % (label, seconds / batch, seconds / plain, "%.2fx rows" % per_rows if per_rows else ""))
    return rows, plain


def report(rows, plain, batch):
    """The markdown section for docs/benchmarks.md."""
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [
        "",
        "### Table 2 methods on VGG16, batch %d at 224x224x3, weights=None (%s, %d CPUs, %s)"
        % (batch, platform.machine(), os.cpu_count(), when),
        "",
        "Plain Keras forward pass of the batch: %.3f s (%.3f s per image). Run: `.venv/bin/python bench/perturbation_bench.py`." % (plain, plain / batch),
        "",
        "| method, parameters | s per image | x forward of the batch | x (evaluations x forward per image) |",
        "|---|---|---|---|",
    ]
    for label, per_image, vs_forward, vs_rows in rows:
        lines.append("| %s | %.2f | %.1f | %s |" % (label, per_image, vs_forward, "%.2f" % vs_rows if vs_rows else "-"))
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Measure, print, and replace this bench's section of docs/benchmarks.md unless --no-report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    engine.enable_graph_mode()
    rows, plain = measure(args.batch)
    section = report(rows, plain, args.batch)
    print(section)
    if not args.no_report:
        report_sections.replace_section("table2 batch %d" % args.batch, section)


if __name__ == "__main__":
    main()
