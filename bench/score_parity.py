"""Parity of the faithfulness curves (engine/faithfulness.py) with Xplique 2.0.2 (deletion, insertion) and Quantus 0.6.0 (MoRF, LeRF).

Both score the same maps of the same model on the same inputs: a seeded small CNN (28x28x1, conv 8 ->
conv 16 (tanh) -> dense 10 softmax, random weights) logged with summary.checkpoint and loaded by the native backend
(Xplique gets its Keras model, fed the preprocessed inputs: no preprocessing here); `--count` uniform random images;
maps of gradient (signed) and integrated gradients explaining the predicted class. Matched parameters: our fill
(a number, or "mean") is Xplique's baseline_mode (0.0, or a function giving each image's channel means); our
steps are its steps, with the same floor(k P / steps) pixel counts; its area (mean over images of the per-step
trapezoid) is the mean over images of our `auc`. Xplique orders pixels by an unstable argsort reversed, we by a
stable one, so tied map values may be taken in another order: the report counts them (float32
coincidences among 784 values per map; one tie moves a curve only where a step boundary splits it). Goal: |difference| <= 1e-3.

MoRF and LeRF against Quantus 0.6.0's RegionPerturbation on the same maps: 4x4 regions (28 is a multiple of 4, so
Quantus pads nothing), `steps` = the number of regions (one region per step, as Quantus perturbs), normalise and abs
off; Quantus answers the drops p(x) - p(x with the first k regions filled), k = 1 .. regions, which are
curve[0] - curve[k] of ours, compared point by point. The fill is a number on both sides: Quantus' "mean" baseline is
the mean of the already perturbed image at every step (it drifts as regions are filled), ours the original image's.

Xplique lives in build/xplique (`make bench-xplique` installs it; see bench/xplique_bench.py), Quantus in build/quantus:
    .venv/bin/pip install --no-deps --target build/quantus quantus==0.6.0 pandas==3.1.1 pytz tzdata tqdm cachetools
    .venv/bin/python bench/score_parity.py [--count 16] [--no-report]
Replaces its section of docs/benchmarks.md unless --no-report; exits 1 if a difference is over the goal.
"""

import argparse
import importlib.util
import os
import platform
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "build", "xplique"))
sys.path.insert(0, os.path.join(ROOT, "build", "quantus"))

import numpy as np  # noqa: E402

GOAL = 1e-3
SETTINGS = [("deletion", 0.0, 10), ("insertion", 0.0, 10), ("deletion", "mean", 16), ("insertion", "mean", 16)]
REGION = 4
REGION_SETTINGS = [("morf", 0.0), ("lerf", 0.0), ("morf", 0.5), ("lerf", 0.5)]  # numbers: Quantus' "mean" is another fill


def logged_model(folder):
    """The seeded CNN, logged with summary.checkpoint and loaded by its engine backend."""
    import tensorflow as tf

    from tb_xai_plugin import files, metadata, summary
    from tb_xai_plugin.engine import backends

    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(8, 3, activation="tanh")(inputs)  # tanh, no pooling: gradients without ties
    x = tf.keras.layers.Conv2D(16, 3, activation="tanh")(x)
    outputs = tf.keras.layers.Dense(10, activation="softmax")(tf.keras.layers.Flatten()(x))
    run_dir = os.path.join(folder, "run")
    with summary.create_file_writer(run_dir).as_default():
        summary.checkpoint(tf.keras.Model(inputs, outputs), step=0)
    manifest = files.checkpoint_manifests(run_dir)[-1]
    return backends.load_checkpoint(os.path.join(run_dir, *metadata.PLUGIN_DIR, metadata.CHECKPOINTS_DIR, manifest["file"]), manifest)


def xplique_area(model, x, targets, maps, metric, fill, steps):
    """Xplique's Deletion / Insertion .evaluate(maps) with the matched parameters."""
    import tensorflow as tf
    from xplique.metrics import Deletion, Insertion

    channel_means = lambda inputs: np.broadcast_to(inputs.mean(axis=(1, 2), keepdims=True), inputs.shape)  # noqa: E731
    baseline = channel_means if isinstance(fill, str) else fill
    kind = Deletion if metric == "deletion" else Insertion
    onehot = tf.one_hot(targets, model.num_classes).numpy()
    return float(kind(model.keras_model, x, onehot, batch_size=256, baseline_mode=baseline, steps=steps).evaluate(maps))


def quantus_drops(model, x, targets, maps, metric, fill):
    """Quantus 0.6.0's RegionPerturbation: [N, regions] drops p(x) - p(x with the first k regions filled), k = 1 .. regions."""
    from quantus.metrics import RegionPerturbation

    regions = (x.shape[1] // REGION) * (x.shape[2] // REGION)
    metric = RegionPerturbation(patch_size=REGION, regions_evaluation=regions, order=metric, perturb_baseline=fill, normalise=False,
                                abs=False, disable_warnings=True, display_progressbar=False)  # fmt: skip
    out = metric(model=model.keras_model, x_batch=x, y_batch=np.asarray(targets), a_batch=maps[:, None], channel_first=False,
                 softmax=True, batch_size=256)  # fmt: skip
    return np.asarray(out, np.float64)


def run_regions(model, images, maps, targets):
    """[(method, metric, fill, regions, max |difference| of the drops)] against Quantus on the same maps."""
    from tb_xai_plugin.engine import faithfulness

    x = model.preprocess(images)
    regions = (x.shape[1] // REGION) * (x.shape[2] // REGION)
    rows = []
    for method, method_maps in maps.items():
        for metric, fill in REGION_SETTINGS:
            curves = faithfulness.score_maps(model, images, targets[method], {"m": method_maps}, metrics=[metric], fill=fill,
                                             steps=regions, region=REGION)["maps"]["m"][metric]  # fmt: skip
            ours = curves[:, :1] - curves[:, 1:]
            theirs = quantus_drops(model, x, targets[method], method_maps, metric, fill)
            rows.append((method, metric, fill, regions, float(np.abs(ours - theirs).max())))
            print(rows[-1], flush=True)
    return rows


def run(args):
    """([(method, metric, fill, steps, tied map values, ours, Xplique's)], run_regions' rows) on the same maps."""
    from tb_xai_plugin.engine import faithfulness
    from tb_xai_plugin.engine.attribution import attribute

    model = logged_model(tempfile.mkdtemp())
    images = np.random.default_rng(0).uniform(0, 1, (args.count, 28, 28, 1)).astype(np.float32)
    x = model.preprocess(images)
    rows, maps, targets = [], {}, {}
    for method in ("gradient", "integrated_gradients"):
        params = {"postprocess": "none"} if method == "gradient" else {}
        out = attribute(model, method, images, params=params, target={"kind": "predicted"})
        maps[method], targets[method] = out.maps, out.targets
        ties = sum(m.size - len(np.unique(m)) for m in out.maps.reshape(len(images), -1))
        for metric, fill, steps in SETTINGS:
            curves = faithfulness.score_maps(model, images, out.targets, {"m": out.maps}, metrics=[metric], fill=fill, steps=steps)
            ours = float(faithfulness.auc(curves["maps"]["m"][metric]).mean())
            theirs = xplique_area(model, x, out.targets, out.maps, metric, fill, steps)
            rows.append((method, metric, fill, steps, ties, ours, theirs))
            print(method, metric, fill, steps, ties, ours, theirs, flush=True)
    return rows, run_regions(model, images, maps, targets)


def report(rows, region_rows, args):
    """The markdown section of this bench."""
    import quantus
    import xplique

    when = time.strftime("%Y-%m-%d %H:%M")
    lines = [
        "### Score parity with Xplique %s and Quantus %s on the same maps, %d images, a seeded 28x28 CNN (%s, %d CPUs, %s)"
        % (xplique.__version__, quantus.__version__, args.count, platform.machine(), os.cpu_count(), when),
        "",
        "Deletion / insertion areas against Xplique's `Deletion` / `Insertion`:",
        "",
        "| map | tied values | metric | fill | steps | tb-xai area | Xplique area | abs difference (goal <= 1e-3) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, metric, fill, steps, ties, ours, theirs in rows:
        row = (method, ties, metric, fill, steps, ours, theirs, abs(ours - theirs))
        lines.append("| %s | %d | %s | %s | %d | %.6f | %.6f | %.1e |" % row)
    lines += [
        "",
        "MoRF / LeRF against Quantus' `RegionPerturbation` (%dx%d regions, one region per step): every point of the drop "
        "curve p(x) - p(x with the first k regions filled):" % (REGION, REGION),
        "",
        "| map | order | fill | regions | max abs difference over all points (goal <= 1e-3) |",
        "|---|---|---|---|---|",
    ]
    for method, metric, fill, regions, difference in region_rows:
        lines.append("| %s | %s | %s | %d | %.1e |" % (method, metric, fill, regions, difference))
    return "\n".join(lines)


def main(argv=None):
    """Run the check, replace its section of docs/benchmarks.md, exit 1 over the goal."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    for name in ("xplique", "quantus"):
        if importlib.util.find_spec(name) is None:
            sys.exit("%s is not in build/%s: install it with the commands in this script's docstring" % (name, name))
    rows, region_rows = run(args)
    text = report(rows, region_rows, args)
    print(text)
    if not args.no_report:
        from bench import report as bench_report

        bench_report.replace_section("score-parity", text)
    over = [r for r in rows if abs(r[-1] - r[-2]) > GOAL] + [r for r in region_rows if r[-1] > GOAL]
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
