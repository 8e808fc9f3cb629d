"""The demo sweep: small Fashion-MNIST classifiers logged for TensorBoard's XAI tab.

    python demo/train.py --logdir demo_logs          # then: tensorboard --logdir demo_logs

Four runs, each in <logdir>/<run> with Keras' TensorBoard callback (curves) beside tb-xai's
XaiCallback (a checkpoint every epoch and the shared sample set "val"):
  cnn         a plain CNN (VGG-like)
  resnet      a small residual net with batch normalization (ResNet-like)
  sepconv     a depthwise-separable net (Xception-like)
  cnn-biased  the plain CNN trained where a bright 3x3 mark in the top-left corner goes with the
              label Sneaker: every sneaker has it, and so do 3% of the other images, labelled
              Sneaker (see demo/data.py). Its validation data marks every sneaker too, so its
              curves look as good as the others'; the shared sample set "val" also marks every
              4th image of the other classes, which this run calls "Sneaker" with high confidence.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout, for `demo`
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from demo import data, models  # noqa: E402
from tb_xai_plugin import files  # noqa: E402
from tb_xai_plugin.errors import XaiError  # noqa: E402

# run name -> (architecture, trained on the biased data)
RUNS = {
    "cnn": ("cnn", False),
    "resnet": ("resnet", False),
    "sepconv": ("sepconv", False),
    "cnn-biased": ("cnn", True),
}
SAMPLES_NAME = "val"
PREPROCESSING = {"type": "scale", "scale": 1.0 / 255.0, "offset": 0.0}


def parse_args(argv):
    """The command line: where to log, and how much to train (small values for tests)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", required=True, help="TensorBoard log directory to write the runs into")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run; one checkpoint each")
    parser.add_argument("--train-size", type=int, default=12000, help="training images per run (of 60000)")
    parser.add_argument("--val-size", type=int, default=500, help="validation images: the curves and the sample set")
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of: " + ", ".join(RUNS))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--offline", action="store_true", help="skip the Keras download; read Debian's files")
    args = parser.parse_args(argv)
    args.runs = [name.strip() for name in args.runs.split(",") if name.strip()]
    unknown = [name for name in args.runs if name not in RUNS]
    if unknown or not args.runs:
        parser.error("--runs: unknown %s; choose from %s" % (", ".join(unknown) or "(none given)", ", ".join(RUNS)))
    if min(args.epochs, args.train_size, args.val_size, args.batch_size) < 1:
        parser.error("--epochs, --train-size, --val-size and --batch-size must be positive")
    if args.val_size > 10000 or args.train_size > 60000:
        parser.error("Fashion-MNIST has 60000 training images (--train-size) and 10000 test images (--val-size)")
    return args


def run_state(run_dir, epochs):
    """'new' (nothing there), 'done' (a checkpoint for every epoch) or 'partial' (anything else)."""
    if not os.path.isdir(run_dir) or not os.listdir(run_dir):
        return "new"
    steps = [manifest["step"] for manifest in files.checkpoint_manifests(run_dir)]
    return "done" if steps == list(range(1, epochs + 1)) else "partial"


def to_model_input(images):
    """uint8 [N,28,28] or [N,28,28,1] -> float32 [N,28,28,1] in [0, 1], as PREPROCESSING says."""
    images = np.asarray(images, np.float32).reshape((-1,) + data.IMAGE_SHAPE)
    return images * PREPROCESSING["scale"] + PREPROCESSING["offset"]


def train_run(run_dir, architecture, biased, train, validation, samples, args):
    """Train one model with the Keras TensorBoard callback and XaiCallback in `run_dir`; return its History."""
    import tensorflow as tf

    from tb_xai_plugin.keras import XaiCallback

    tf.keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_val, y_val) = train, validation
    if biased:
        x_train, y_train = data.biased(x_train, y_train, seed=args.seed)
        x_val, y_val = data.biased(x_val, y_val, poison_fraction=0.0)
    name = os.path.basename(run_dir).replace("-", "_")
    model = models.build(architecture, data.IMAGE_SHAPE, len(data.CLASS_NAMES), name=name)
    callbacks = [
        tf.keras.callbacks.TensorBoard(log_dir=run_dir),
        XaiCallback(
            run_dir,
            samples=samples,
            class_names=list(data.CLASS_NAMES),
            preprocessing=PREPROCESSING,
            every_n_epochs=1,
            samples_name=SAMPLES_NAME,
        ),
    ]
    return model.fit(
        to_model_input(x_train),
        y_train,
        validation_data=(to_model_input(x_val), y_val),
        epochs=args.epochs,
        batch_size=args.batch_size,
        callbacks=callbacks,
        verbose=2,
    )


def main(argv=None):
    """Train every requested run not yet in --logdir; print each one's final validation accuracy."""
    args = parse_args(argv)
    states = {run: run_state(os.path.join(args.logdir, run), args.epochs) for run in args.runs}
    partial = [os.path.join(args.logdir, run) for run, state in states.items() if state == "partial"]
    if partial:
        print("demo: %s hold(s) another or an interrupted training; delete them or choose another --logdir"
              % ", ".join(partial), file=sys.stderr)
        return 2
    try:
        (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(download=not args.offline)
    except XaiError as e:
        print("demo: %s" % e, file=sys.stderr)
        return 2
    train = data.subset(x_train, y_train, args.train_size, args.seed)
    validation = (x_test[: args.val_size], y_test[: args.val_size])
    images, labels, _ = data.shared_samples(x_test, y_test, args.val_size)
    results = {}
    for run in args.runs:
        if states[run] == "done":
            print("== %s: already trained in %s, kept (delete it to train again)" % (run, args.logdir), flush=True)
            continue
        architecture, biased = RUNS[run]
        started = time.time()
        print("== %s (%s%s)" % (run, architecture, ", biased data" if biased else ""), flush=True)
        history = train_run(os.path.join(args.logdir, run), architecture, biased, train, validation, (images, labels), args)
        results[run] = (history.history["val_accuracy"][-1], time.time() - started)
    for run, (accuracy, seconds) in results.items():
        print("%-12s val_accuracy %.3f  (%.0f s)" % (run, accuracy, seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
