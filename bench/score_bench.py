"""Cost of faithfulness scores against the maps they score, as a ratio from one run (issue 15 item 1).

The grid: the demo's three architectures (demo.models: cnn, resnet, sepconv; 28x28x1, 10 classes, seeded random
weights, logged and loaded by the engine's backend) x four methods (gradient, integrated gradients, Grad-CAM,
occlusion, each with its defaults), `--count` images. Maps: engine.attribute per cell, as a worker computes a cell.
Scores: engine.faithfulness.score_maps per model on its four methods' maps, as the worker's scores op does, with the
route's defaults (deletion, insertion, MoRF and LeRF, 16 steps, mean fill, 4x4 regions). Best of `--repeat`, maps
and scores timed in turn after one warm-up each. Goal: scores <= 3x the maps.

    .venv/bin/python bench/score_bench.py [--count 8] [--repeat 2] [--no-report]
Replaces its section of docs/benchmarks.md unless --no-report.
"""

import argparse
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from bench.engine_bench import alternate  # noqa: E402

METHODS = ("gradient", "integrated_gradients", "grad_cam", "occlusion")
GOAL = 3.0


def logged_models(folder):
    """{architecture: loaded model} of the demo's architectures, seeded, logged with summary.checkpoint."""
    import tensorflow as tf

    from demo import models
    from tb_xai_plugin import files, metadata, summary
    from tb_xai_plugin.engine import backends

    out = {}
    for architecture in models.ARCHITECTURES:
        tf.keras.utils.set_random_seed(0)
        run_dir = os.path.join(folder, architecture)
        with summary.create_file_writer(run_dir).as_default():
            summary.checkpoint(models.build(architecture, (28, 28, 1), 10, architecture), step=0)
        manifest = files.checkpoint_manifests(run_dir)[-1]
        path = os.path.join(run_dir, *metadata.PLUGIN_DIR, metadata.CHECKPOINTS_DIR, manifest["file"])
        out[architecture] = backends.load_checkpoint(path, manifest)
    return out


def run(args):
    """{architecture: (maps seconds, scores seconds)} for the grid's cells of that model."""
    from tb_xai_plugin.engine import faithfulness
    from tb_xai_plugin.engine.attribution import attribute

    images = np.random.default_rng(0).uniform(0, 1, (args.count, 28, 28, 1)).astype(np.float32)
    results = {}
    for architecture, model in logged_models(tempfile.mkdtemp()).items():
        found = {}

        def maps():
            for method in METHODS:
                found[method] = attribute(model, method, images, target={"kind": "predicted"})

        def scores():
            targets = found[METHODS[0]].targets
            faithfulness.score_maps(model, images, targets, {m: found[m].maps for m in METHODS}, metrics=list(faithfulness.METRICS))

        results[architecture] = alternate(args.repeat, maps, scores)
        print(architecture, results[architecture], flush=True)
    return results


def report(results, args):
    """The markdown section of this bench."""
    when = time.strftime("%Y-%m-%d %H:%M")
    maps, scores = (sum(r[i] for r in results.values()) for i in (0, 1))
    lines = [
        "### Faithfulness scores vs the maps they score: 3 models x 4 methods (%s), %d images at 28x28x1, best of %d "
        "(%s, %d CPUs, load %.1f, %s)" % (", ".join(METHODS), args.count, args.repeat, platform.machine(), os.cpu_count(),
                                           os.getloadavg()[0], when),  # fmt: skip
        "",
        "| model | maps (4 cells) | scores (4 metrics x 16 steps, mean fill) | scores / maps (goal <= 3x) |",
        "|---|---|---|---|",
    ]
    for architecture, (m, s) in results.items():
        lines.append("| %s | %.2f s | %.2f s | %.2fx |" % (architecture, m, s, s / m))
    lines.append("| all 12 cells | %.2f s | %.2f s | %.2fx |" % (maps, scores, scores / maps))
    return "\n".join(lines)


def main(argv=None):
    """Run the bench and replace its section of docs/benchmarks.md."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    text = report(run(args), args)
    print(text)
    if not args.no_report:
        from bench import report as bench_report

        bench_report.replace_section("scores", text)


if __name__ == "__main__":
    main()
