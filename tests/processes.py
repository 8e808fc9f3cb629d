"""The real `tensorboard` processes tests start: wait until the xai plugin is active, stop them."""

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request

from tests.conftest import free_port

TENSORBOARD = os.path.join(os.path.dirname(sys.executable), "tensorboard")


def stop(process, timeout=20):
    """Terminate `process`; kill it if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_xai(base, process, timeout=120):
    """The xai entry of plugins_listing once the TensorBoard at `base` lists the plugin as enabled; RuntimeError if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("tensorboard exited with %s" % process.returncode)
        try:
            with urllib.request.urlopen(base + "/data/plugins_listing", timeout=5) as r:
                entry = json.load(r).get("xai", {})
            if entry.get("enabled"):
                return entry
        except (OSError, ValueError):  # not listening yet, or a partial answer
            pass
        time.sleep(0.5)
    raise RuntimeError("the xai plugin did not become active within %ss" % timeout)


@contextlib.contextmanager
def tensorboard(logdir, cache, args=(), env=None, prefix=""):
    """(port, process) of a real `tensorboard` over `logdir` with extra `args` and environment, stopped on exit; its log in `cache`."""
    port = free_port()
    command = [TENSORBOARD, "--logdir", logdir, "--host", "127.0.0.1", "--port", str(port), "--reload_interval", "1",
               "--xai_cache_dir", cache, *args]  # fmt: skip
    with open(os.path.join(cache, "tensorboard.log"), "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
        try:
            wait_for_xai("http://127.0.0.1:%d%s" % (port, prefix), process)
            yield port, process
        finally:
            stop(process)
