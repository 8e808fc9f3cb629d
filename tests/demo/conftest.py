"""Fixtures of the demo tests: the checkout on sys.path (for `demo`), Fashion-MNIST, a tiny sweep."""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from demo import data, train  # noqa: E402

TINY = {"epochs": 2, "train_size": 256, "val_size": 32}


@pytest.fixture(scope="session")
def fashion():
    """Fashion-MNIST as the demo loads it: ((x_train, y_train), (x_test, y_test))."""
    return data.load_fashion_mnist()


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    """The whole demo sweep, every run, at a tiny size: (logdir, TINY)."""
    logdir = str(tmp_path_factory.mktemp("demo_logs"))
    argv = ["--logdir", logdir, "--epochs", str(TINY["epochs"]), "--train-size", str(TINY["train_size"]),
            "--val-size", str(TINY["val_size"])]
    assert train.main(argv) == 0
    return logdir, TINY
