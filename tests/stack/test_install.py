"""Installing the wheel of this checkout, with its dependencies, leaves the user's TensorFlow stack alone.

One fresh virtualenv per run (`python3 -m venv`), given tensorflow 2.21 and Keras 3.15 first, as a
user's training environment would hold them; then `pip install tb_xai-*.whl` resolves tb-xai's
declared ranges against it. Slow by nature (TensorFlow alone is 600 MB of files): the wheels are
kept in stack_helpers.WHEELHOUSE, so only the first run downloads them.
"""

import json
import os
import socket
import subprocess
import time
import urllib.request
import zipfile

import pytest

from stack_helpers import USER_STACK, build_wheel, fill_wheelhouse, pip, run, versions

STACK = ["tensorflow", "keras", "numpy"]
pytestmark = pytest.mark.timeout(1500)  # the first run downloads TensorFlow into the wheelhouse


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory):
    """(python, wheel, versions before): a fresh venv holding the user's stack, and the wheel of this checkout."""
    root = tmp_path_factory.mktemp("install")
    wheel = build_wheel(str(root / "dist"))
    requirements = ["%s==%s" % item for item in USER_STACK.items()]
    fill_wheelhouse(*requirements, wheel)
    run(["python3", "-m", "venv", str(root / "venv")])
    python = str(root / "venv" / "bin" / "python")
    pip(python, *requirements)
    before = versions(python, STACK)
    pip(python, wheel)
    return python, wheel, before


def test_the_wheel_holds_the_dashboard_and_declares_ranges(user_venv):
    _, wheel, _ = user_venv
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode("utf-8")
    assert "tb_xai_plugin/static/index.js" in names
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if r.split(">")[0].split("=")[0].split("<")[0].strip() in STACK + ["tensorboard"] and "extra ==" not in r]
    assert core and not [r for r in core if "==" in r or "<" in r]  # lower bounds only: nothing to downgrade
    assert "Requires-Python: >=3.10" in metadata


def test_install_leaves_tensorflow_keras_and_numpy_as_they_were(user_venv):
    python, _, before = user_venv
    assert before["tensorflow"] == USER_STACK["tensorflow"] and before["keras"] == USER_STACK["keras"]
    assert versions(python, STACK) == before
    run([python, "-m", "pip", "check"])


def test_the_installed_plugin_imports_and_tensorboard_lists_it(user_venv, tmp_path):
    python, _, _ = user_venv
    code = "import tb_xai_plugin.summary, tb_xai_plugin.keras, keras; print(keras.__version__)"
    assert run([python, "-c", code], cwd=str(tmp_path)).stdout.split()[-1] == USER_STACK["keras"]
    port = _free_port()
    tensorboard = os.path.join(os.path.dirname(python), "tensorboard")
    server = subprocess.Popen([tensorboard, "--logdir", str(tmp_path), "--port", str(port), "--bind_all"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=str(tmp_path))
    try:
        listing = _plugins_listing(port, server)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "xai" in listing and listing["xai"]["enabled"] is not None


def _free_port():
    """A free TCP port on this machine."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plugins_listing(port, server, timeout=120):
    """TensorBoard's /data/plugins_listing once it answers (JSON as a dict)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if server.poll() is not None:
            raise AssertionError("tensorboard exited: %s" % server.stderr.read().decode()[-2000:])
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/data/plugins_listing" % port, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            time.sleep(0.5)
    raise AssertionError("tensorboard did not answer within %d s" % timeout)
