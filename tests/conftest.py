"""Fixtures shared by every test folder. Folder-specific fixtures live in that folder's conftest.

tests/engine runs in its own pytest process (see the Makefile): the engine needs eager execution
disabled, a process-wide switch that the summary ops (eager, like a user's training) cannot share.
"""

import importlib.metadata
import os
import shutil
import socket

import pytest

# This process's stack: "keras3" in .venv (TensorFlow 2.21), "keras2" in .venv-innvestigate (TensorFlow 2.14).
STACK = "keras%s" % importlib.metadata.version("keras").split(".")[0]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(config, items):
    """Deselect (not skip) the tests marked @pytest.mark.stack(name) for the other stack: each runs where it checks something."""
    other = [item for item in items if any(mark.args[0] != STACK for mark in item.iter_markers("stack"))]
    if other:
        config.hook.pytest_deselected(items=other)
        dropped = set(map(id, other))
        items[:] = [item for item in items if id(item) not in dropped]


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def chromium_path():
    """Debian's chromium, which the browser tests drive through Playwright."""
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: `make test` installs it with apt-get")
    return CHROMIUM
