"""Cost of the logging ops, as ratios against the plain library doing the same work in this run.

  - summary.checkpoint (h5 + manifest with weights checksum and file hash + index summary)
    against a plain `model.save(path, save_format="h5")`;
  - summary.samples (checks + .npz + manifest with its hash + index summary) against a plain
    `np.savez` of the same arrays.

    python bench/logging_ops.py [--model cnn|resnet50] [--samples 5000] [--repeat 3]
"""

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tb_xai_plugin import summary  # noqa: E402


def build(name):
    """A random-weight Keras model: a small CNN (28x28x1) or ResNet50 (224x224x3)."""
    import tensorflow as tf

    if name == "resnet50":
        return tf.keras.applications.ResNet50(weights=None)
    return tf.keras.Sequential(
        [
            tf.keras.layers.Input((28, 28, 1)),
            tf.keras.layers.Conv2D(32, 3, activation="relu"),
            tf.keras.layers.Conv2D(64, 3, activation="relu"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10, activation="softmax"),
        ]
    )


def best_of(repeat, work):
    """The shortest wall time of `repeat` calls of work(i)."""
    times = []
    for i in range(repeat):
        start = time.perf_counter()
        work(i)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None):
    """Print the two ratios (ours / plain) with their absolute times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("cnn", "resnet50"), default="cnn")
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    model = build(args.model)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.samples,) + tuple(model.input_shape[1:]), dtype=np.uint8)
    labels = rng.integers(0, int(model.output_shape[-1]), args.samples)
    with tempfile.TemporaryDirectory() as root:
        writer = summary.create_file_writer(os.path.join(root, "run"))
        with writer.as_default():
            plain_save = best_of(args.repeat, lambda i: model.save(os.path.join(root, "plain%d.h5" % i), save_format="h5"))
            ours_save = best_of(args.repeat, lambda i: summary.checkpoint(model, i))
            plain_npz = best_of(args.repeat, lambda i: np.savez(os.path.join(root, "plain%d.npz" % i), images=images, labels=labels))
            ours_npz = best_of(args.repeat, lambda i: summary.samples("s%d" % i, images, i, labels=labels))
        writer.close()
    print("model %s, %d params" % (args.model, model.count_params()))
    print("checkpoint: %.3f s vs model.save h5 %.3f s: ratio %.2f" % (ours_save, plain_save, ours_save / plain_save))
    print("samples (%d images %s): %.3f s vs np.savez %.3f s: ratio %.2f"
          % (args.samples, "x".join(map(str, images.shape[1:])), ours_npz, plain_npz, ours_npz / plain_npz))


if __name__ == "__main__":
    main()
