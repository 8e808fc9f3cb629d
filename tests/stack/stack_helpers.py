"""Helpers of the stack tests: a fresh virtualenv holding the current TensorFlow, and the wheel of this checkout."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUNDLE = os.path.join(REPO, "tb_xai_plugin", "static", "index.js")
# The user's stack the install must leave alone: the versions of requirements.txt.
USER_STACK = {"tensorflow": "2.21.0", "keras": "3.15.1"}
# Downloaded wheels, kept between runs (pip's own cache stays empty on these machines); outside the repo.
WHEELHOUSE = os.path.join(os.path.expanduser("~"), ".cache", "tb-xai-stack-test", "wheelhouse")


def run(argv, timeout=900, **kwargs):
    """subprocess.run(argv) that raises with the tail of stderr when the command fails."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s" % (" ".join(argv), result.returncode, (result.stdout + result.stderr)[-4000:]))
    return result


def pip(python, *args):
    """`python -m pip install ...` (quiet, no .pyc compiling: TensorFlow's thousands of files), wheels from WHEELHOUSE first."""
    return run([python, "-m", "pip", "install", "-q", "--no-compile", "--find-links", WHEELHOUSE, *args])


def fill_wheelhouse(*requirements):
    """Download `requirements` (with their dependencies) into WHEELHOUSE, once: later runs install offline-fast."""
    os.makedirs(WHEELHOUSE, exist_ok=True)
    run([sys.executable, "-m", "pip", "download", "-q", "--find-links", WHEELHOUSE, "-d", WHEELHOUSE, *requirements])
    for name in os.listdir(WHEELHOUSE):
        if name.startswith("tb_xai-"):  # the checkout's own wheel is built afresh each run, never kept
            os.remove(os.path.join(WHEELHOUSE, name))


def build_wheel(folder):
    """The wheel of this checkout (with the dashboard bundle) built into `folder`: its path."""
    assert os.path.exists(BUNDLE), "the dashboard bundle is missing: run `make frontend` first"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", folder, REPO])
    (name,) = [n for n in os.listdir(folder) if n.endswith(".whl")]
    return os.path.join(folder, name)


def versions(python, names):
    """{name: version} of the distributions `names` installed for `python`."""
    code = "import importlib.metadata as m, json, sys; print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))"
    return json.loads(run([python, "-c", code, *names]).stdout)
