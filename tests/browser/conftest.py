"""A real TensorBoard over a logdir written by the summary ops, and Chromium driven by Playwright.

The logdir: two runs ("alpha", "beta") of a tiny CNN, three checkpoints each (a few training steps
apart, so the maps change), their hparams (seed 1 and 2), and a labelled sample set "val" of 28x28
grayscale images in "alpha".
"""

import contextlib
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
if REPO not in sys.path:  # plain `pytest` (not `python -m pytest`) leaves the repository off the path
    sys.path.insert(0, REPO)

from tests import processes  # noqa: E402
from tests.conftest import CHROMIUM_ARGS  # noqa: E402
BUNDLE = os.path.join(REPO, "tb_xai_plugin", "static", "index.js")
# Screenshots land in the git-ignored build folder; `make screenshots` copies them to docs/images on purpose.
SCREENSHOTS = os.path.join(REPO, "build", "screenshots")
os.makedirs(SCREENSHOTS, exist_ok=True)
CLASSES = ["circle", "square", "cross", "stripes"]
SAMPLES = 24


def shapes(count, seed):
    """`count` 28x28x1 uint8 images of 4 drawn classes (with noise) and their labels."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    labels = np.arange(count) % 4
    images = np.zeros((count, 28, 28), np.float32)
    for i, label in enumerate(labels):
        cy, cx = rng.integers(10, 18, 2)
        if label == 0:
            images[i] = ((yy - cy) ** 2 + (xx - cx) ** 2 < 36).astype(np.float32)
        elif label == 1:
            images[i, cy - 5 : cy + 5, cx - 5 : cx + 5] = 1.0
        elif label == 2:
            images[i, cy - 1 : cy + 2, 4:24] = 1.0
            images[i, 4:24, cx - 1 : cx + 2] = 1.0
        else:
            images[i, ::4, :] = 1.0
    images = np.clip(images + rng.normal(0, 0.15, images.shape), 0, 1)
    return (images[..., None] * 255).astype(np.uint8), labels


def tiny_cnn(seed):
    """28x28x1 -> conv(4) -> conv(8) -> global average pool -> dense(4, softmax)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
    x = tf.keras.layers.Conv2D(8, 3, activation="relu", name="conv2")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf.keras.layers.Dense(4, activation="softmax", name="dense")(x)
    model = tf.keras.Model(inputs, outputs, name="tiny_cnn")
    model.compile(tf.keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    return model


def build_logdir(root):
    """Two runs x three checkpoints, trained a few steps between checkpoints; samples in 'alpha'."""
    from tensorboard.plugins.hparams import api as hparams_api

    from tb_xai_plugin import summary

    train_x, train_y = shapes(128, seed=1)
    val_x, val_y = shapes(SAMPLES, seed=2)
    preprocessing = {"type": "scale", "scale": 1.0 / 255.0, "offset": 0.0}
    for run, seed in (("alpha", 1), ("beta", 2)):
        model = tiny_cnn(seed)
        writer = summary.create_file_writer(os.path.join(root, run))
        with writer.as_default():
            hparams_api.hparams({"seed": seed, "optimizer": "adam"})
            if run == "alpha":
                summary.samples("val", val_x, step=0, labels=val_y, class_names=CLASSES)
            for step in (1, 2, 3):
                model.fit(train_x / 255.0, train_y, epochs=4, batch_size=32, verbose=0)
                summary.checkpoint(model, step=step, class_names=CLASSES, preprocessing=preprocessing)
        writer.flush()
        writer.close()
    return root


@pytest.fixture(scope="session")
def bundle():
    """The built dashboard (make frontend / npm run build)."""
    if not os.path.exists(BUNDLE):
        subprocess.check_call(["npm", "run", "build"], cwd=os.path.join(REPO, "frontend"))
    return BUNDLE


@contextlib.contextmanager
def serve_tensorboard(logdir, cache):
    """Base URL of a real `tensorboard` process on a free port over `logdir`, stopped on exit; its log in `cache`."""
    with processes.tensorboard(logdir, cache) as (port, _):
        yield "http://127.0.0.1:%d" % port


@pytest.fixture(scope="session")
def tensorboard(tmp_path_factory, bundle):
    """Base URL of a real `tensorboard` process on a free port over the test logdir."""
    logdir = build_logdir(str(tmp_path_factory.mktemp("logdir")))
    with serve_tensorboard(logdir, str(tmp_path_factory.mktemp("xai-cache"))) as url:
        yield url


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory, chromium_path):
    """A Chromium context with a fresh profile, accepting downloads."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium_path,
            args=CHROMIUM_ARGS,
            headless=True,
            accept_downloads=True,
            viewport={"width": 1400, "height": 1300},
        )
        try:
            yield context
        finally:
            context.close()
