"""LRP on MobileNetV2 in the Keras 2 stack (issue 17): the engine's iNNvestigate backend with lrp_rules, warm.

    .venv-innvestigate/bin/python bench/keras2_lrp_bench.py [--batch 2] [--size 32] [--repeat 2]

(from another stack it re-runs itself in .venv-innvestigate). keras.applications.MobileNetV2 (weights=None,
4 classes), saved eager as .h5 by a child process. Each LRP method's warm time per batch through
engine.attribute, against (1) the engine's gradient on the same batch and (2) plain iNNvestigate's analyzer
of the same method on the same model with its model checks off (its check refuses MobileNetV2; off, it
sends ReLU(6.) through the gradient): what lrp_rules' mappings and check cost. Replaces the section
"keras2 lrp rules" of docs/benchmarks.md.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from bench.engine_bench import best_of  # noqa: E402

INNVESTIGATE_PYTHON = os.path.join(ROOT, ".venv-innvestigate", "bin", "python")
# One method: each further analyzer builds slower in the same graph (minutes for a third on 2 shared CPUs).
METHODS = ("lrp.epsilon",)


def save(directory, size):
    """In an eager child: log MobileNetV2 at size x size as step 1 of run `directory` (summary.checkpoint); its [path, manifest]."""
    import tensorflow as tf

    from tb_xai_plugin import files, summary

    model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3), classes=4)
    with summary.create_file_writer(directory).as_default():
        assert summary.checkpoint(model, step=1)
    return list(files.checkpoint_listing(directory)[0])


def plain_analyzer(path, method_id):
    """(x, targets) -> plain iNNvestigate's analysis with its model checks off, on the .h5 at `path`."""
    import innvestigate
    import tensorflow as tf

    model = innvestigate.model_wo_softmax(tf.keras.models.load_model(path, compile=False))
    analyzer = innvestigate.create_analyzer(method_id, model, neuron_selection_mode="index", disable_model_checks=True)
    return lambda x, targets: analyzer.analyze(x, neuron_selection=targets)


def measure(path, manifest, batch, repeat):
    """{method: (engine seconds, plain seconds)} and the engine's gradient seconds, warm, one batch."""
    from tb_xai_plugin import engine

    engine.enable_graph_mode()
    model = engine.load_checkpoint(path, manifest)
    x = np.random.default_rng(0).uniform(-1, 1, size=(batch,) + tuple(model.input_shape)).astype(np.float32)
    targets = np.arange(batch) % 4
    attribute = lambda method_id: engine.attribute(model, method_id, x, target={"kind": "class", "index": 1})  # noqa: E731
    gradient = best_of(repeat, lambda: attribute("gradient"))
    print("gradient: %.3f s" % gradient, file=sys.stderr, flush=True)
    times = {}
    for method_id in METHODS:
        plain = plain_analyzer(path, method_id)
        times[method_id] = (best_of(repeat, lambda: attribute(method_id)), best_of(repeat, lambda: plain(x, targets)))
        print("%s: engine %.3f s, plain %.3f s" % ((method_id,) + times[method_id]), file=sys.stderr, flush=True)
    return times, gradient


def report(times, gradient, args):
    """The markdown section."""
    load = ", ".join("%.1f" % v for v in os.getloadavg())
    lines = [
        "### LRP on MobileNetV2, Keras 2 (iNNvestigate backend + lrp_rules), batch %d at %dx%d, warm (%s, %d CPUs, load %s, %s)"
        % (args.batch, args.size, args.size, platform.machine(), os.cpu_count(), load, time.strftime("%Y-%m-%d %H:%M")),
        "",
        "engine.attribute (lrp_rules' check and mappings) against plain iNNvestigate's analyzer of the same method with"
        " its model checks off (ReLU(6.) by gradient), and against the engine's gradient; best of %d after a warm-up." % args.repeat,
        "",
        "| method | engine | plain iNNvestigate | engine / plain | engine / gradient |",
        "|---|---|---|---|---|",
    ]
    for method_id, (ours, plain) in times.items():
        lines.append("| %s | %.3f s | %.3f s | %.2f | %.1f |" % (method_id, ours, plain, ours / plain, ours / gradient))
    lines += ["", "Gradient, engine: %.3f s." % gradient]
    return "\n".join(lines)


def main():
    """Parse, re-run in .venv-innvestigate if needed, save the model in a child, measure, write the section."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--save")
    args = parser.parse_args()
    import importlib.metadata

    if importlib.metadata.version("keras").startswith("3"):
        sys.exit(subprocess.run([INNVESTIGATE_PYTHON, os.path.abspath(__file__)] + sys.argv[1:]).returncode)
    if args.save:
        json.dump(save(args.save, args.size), sys.stdout)
        return
    import tempfile

    from bench import report as sections

    with tempfile.TemporaryDirectory() as directory:
        saved = subprocess.run([sys.executable, os.path.abspath(__file__), "--save", directory, "--size", str(args.size)],
                               capture_output=True, text=True, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        path, manifest = json.loads(saved.stdout)
        times, gradient = measure(path, manifest, args.batch, args.repeat)
    text = report(times, gradient, args)
    print(text)
    sections.replace_section("keras2 lrp rules", text)


if __name__ == "__main__":
    main()
