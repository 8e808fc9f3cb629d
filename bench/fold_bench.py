"""What folding a model's leading preprocessing costs at load, against Keras loading the same file.

    .venv/bin/python bench/fold_bench.py [--side 96] [--repeats 3] [--no-report]

For the transfer-learning model (preprocess_input ops, MobileNetV2 alpha 0.35) and EfficientNetB0
nested (its own Rescaling + Normalization), weights=None: keras.saving.load_model of the file (the
plain library), the engine's load (checks, checksum and the fold), the fold alone
(native/folding.fold on the loaded model), and a forward pass of a batch of 16 through the rebuilt
model against the model as saved. Times are medians; the ratios are what the report is about.
Writes its section of docs/benchmarks.md (bench/report.py).
"""

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "engine"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def models(side):
    """{name: Keras model} of the two nested-base shapes people train."""
    import keras

    inputs = keras.Input((side, side, 3))
    base = keras.applications.MobileNetV2(input_shape=(side, side, 3), include_top=False, weights=None, alpha=0.35)
    h = base(keras.applications.mobilenet_v2.preprocess_input(inputs), training=False)
    transfer = keras.Model(inputs, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(h)), name="transfer_learning")
    inputs = keras.Input((side, side, 3))
    base = keras.applications.EfficientNetB0(input_shape=(side, side, 3), include_top=False, weights=None)
    effnet = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(base(inputs))), name="efficientnet_nested")
    return {"transfer_learning": transfer, "efficientnet_nested": effnet}


def median_time(fn, repeats):
    """Median wall seconds of fn() over `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name, keras_model, repeats, directory):
    """One table row: (name, keras load s, engine load s, fold s, forward ratio rebuilt / saved)."""
    import keras
    import numpy as np

    from conftest import write_checkpoint
    from tb_xai_plugin import engine
    from tb_xai_plugin.engine.backends.native import folding

    path, manifest = write_checkpoint(keras_model, os.path.join(directory, name))
    plain = median_time(lambda: keras.saving.load_model(path, compile=False), repeats)
    ours = median_time(lambda: engine.load_checkpoint(path, manifest), repeats)
    model = engine.load_checkpoint(path, manifest)
    fold = median_time(lambda: folding.fold(model.saved_model), repeats)
    x = np.random.default_rng(0).uniform(0, 255, (16,) + model.input_shape).astype(np.float32)
    u = model.preprocess(x)
    model.saved_model(x, training=False), model.keras_model(u, training=False)  # warm both
    saved = median_time(lambda: model.saved_model(x, training=False), repeats * 3)
    rebuilt = median_time(lambda: model.keras_model(u, training=False), repeats * 3)
    return name, plain, ours, fold, rebuilt / saved


def table(rows, side):
    """The report's markdown section."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
    lines = [
        "### Fold at %d px (%s, %d CPUs, load %.1f, %s UTC)" % (side, platform.machine(), os.cpu_count(), os.getloadavg()[0], when),
        "",
        "| model | keras load_model | engine load (fold included) | fold alone | fold / keras load | forward rebuilt / saved |",
        "|---|---|---|---|---|---|",
    ]
    for name, plain, ours, fold, forward in rows:
        lines.append("| %s | %.2f s | %.2f s | %.3f s | %.3f | %.2f |" % (name, plain, ours, fold, fold / plain, forward))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-report", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        rows = [measure(name, m, args.repeats, directory) for name, m in models(args.side).items()]
    text = table(rows, args.side)
    print(text)
    if not args.no_report:
        from bench.report import replace_section

        replace_section("fold", text)


if __name__ == "__main__":
    main()
