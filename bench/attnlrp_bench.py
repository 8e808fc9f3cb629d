"""AttnLRP in the native LRP (Keras 3, `.venv`) against a plain TensorFlow gradient x input of the same logits.

AttnLRP's claim is the cost of about one backward pass; the plain reference is that backward pass: a
tf.function of tf.GradientTape's gradient of the target logit times the input. Both are warm (traced
once first), one batch of 32x32 images, best of --repeat; the models have random weights:

    .venv/bin/python bench/attnlrp_bench.py [--batch 8] [--repeat 3] [--methods lrp.epsilon,lrp.sequential_preset_a]

It replaces its section of docs/benchmarks.md (bench/report.py).
"""

import argparse
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from bench.report import replace_section  # noqa: E402

SIDE = 32


def small_vit(patch=8, width=32, heads=2):
    """Patch embedding, two pre-norm blocks (MultiHeadAttention, GELU MLP), LayerNorm, mean over tokens, 4 logits."""
    import keras

    L = keras.layers
    inputs = keras.Input((SIDE, SIDE, 3))
    x = L.Reshape(((SIDE // patch) ** 2, width))(L.Conv2D(width, patch, strides=patch)(inputs))
    for _ in range(2):
        h = L.LayerNormalization(epsilon=1e-6)(x)
        x = L.Add()([x, L.MultiHeadAttention(heads, width // heads)(h, h)])
        h = L.Dense(width)(L.Dense(2 * width, activation="gelu")(L.LayerNormalization(epsilon=1e-6)(x)))
        x = L.Add()([x, h])
    x = L.GlobalAveragePooling1D()(L.LayerNormalization(epsilon=1e-6)(x))
    return keras.Model(inputs, L.Dense(4)(x), name="small_vit")


def convnext_tiny():
    """keras.applications.ConvNeXtTiny, weights=None, 32x32, 4 logits (no softmax)."""
    import keras

    return keras.applications.ConvNeXtTiny(input_shape=(SIDE, SIDE, 3), weights=None, classes=4, classifier_activation=None)


def best_of(f, repeat):
    """The shortest of `repeat` wall times of f() (f returns a tensor, fetched as numpy)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        np.asarray(f())
        times.append(time.perf_counter() - start)
    return min(times)


def gradient_x_input(model):
    """A tf.function x, targets -> x * d logit_target / dx (the plain backward pass)."""
    import tensorflow as tf

    def run(x, targets):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = model(x)
            chosen = tf.reduce_sum(logits * tf.one_hot(targets, tf.shape(logits)[-1]))
        return x * tape.gradient(chosen, x)

    return tf.function(run, autograph=False)


def measure(name, model, methods, batch, repeat):
    """Rows (model, method, AttnLRP s, gradient x input s, ratio) for one model, each warm."""
    import tensorflow as tf

    from tb_xai_plugin.engine.backends.native import lrp

    x = tf.constant(np.random.default_rng(0).uniform(0, 1, (batch, SIDE, SIDE, 3)).astype(np.float32))
    targets = tf.constant(np.arange(batch) % 4, tf.int32)
    plain = gradient_x_input(model)
    plain(x, targets)
    plain_s = best_of(lambda: plain(x, targets), repeat)
    prepared = lrp.prepare(model)
    rows = []
    for method in methods:
        f = lrp.relevance_function(prepared, method, {})
        start = time.perf_counter()
        np.asarray(f(x, targets))
        first = time.perf_counter() - start
        warm = best_of(lambda: f(x, targets), repeat)
        rows.append((name, method, warm, plain_s, warm / plain_s, first))
    return rows


def report(rows, batch):
    """The section's markdown: one row per (model, method)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "### AttnLRP, warm, vs a plain TensorFlow gradient x input, batch %d at 32x32 (%s, %d CPUs, load %.1f, %s)"
        % (batch, platform.machine(), os.cpu_count(), load, time.strftime("%Y-%m-%d %H:%M", time.gmtime())),
        "",
        "Random weights; best of the runs; first call = tracing + one run. Ratio = AttnLRP / gradient x input.",
        "",
        "| model | method | AttnLRP | gradient x input | ratio | first call |",
        "|---|---|---|---|---|---|",
    ]
    lines += ["| %s | %s | %.3f s | %.3f s | %.2f | %.1f s |" % row for row in rows]
    return "\n".join(lines)


def main():
    """Measure both models, print the table and replace the section."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--methods", default="lrp.epsilon,lrp.sequential_preset_a")
    args = parser.parse_args()
    import keras

    keras.utils.set_random_seed(0)
    methods = args.methods.split(",")
    rows = measure("small ViT", small_vit(), methods, args.batch, args.repeat)
    rows += measure("ConvNeXtTiny", convnext_tiny(), methods, args.batch, args.repeat)
    text = report(rows, args.batch)
    print(text)
    replace_section("attnlrp", text)


if __name__ == "__main__":
    main()
