"""tests/stack checks the current stack (.venv: TensorFlow 2.21, Keras 3); in the Keras 2 stack it stops at once.

Run it as `.venv/bin/python -m pytest tests/stack`; `.venv-innvestigate` runs need `--ignore=tests/stack`.
"""

import importlib.metadata

import pytest

KERAS = importlib.metadata.version("keras")
if not KERAS.startswith("3"):
    raise pytest.UsageError("tests/stack runs in .venv (Keras 3), not with Keras %s: pass --ignore=tests/stack here" % KERAS)
