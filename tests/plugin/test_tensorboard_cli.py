"""The installed `tensorboard` command finds the plugin through its entry point and serves attributions."""

import json
import subprocess
import urllib.error
import urllib.request

import pytest

from tb_xai_plugin.plugin import encoding
from tests.conftest import free_port
from tests.processes import TENSORBOARD, wait_for_xai


def fetch(url, body=None, headers=None, timeout=120):
    """(status, parsed JSON) of a GET, or of a POST when body is given."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, headers=dict(headers or {}, **{"Content-Type": "application/json"}))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.mark.parametrize("load_fast", ["true", "false"])  # true: the Rust data server, as by default
def test_tensorboard_serves_the_xai_plugin(logdir, tmp_path, load_fast):
    port = free_port()
    command = [
        TENSORBOARD, "--logdir", logdir, "--host", "127.0.0.1", "--port", str(port), "--load_fast", load_fast,
        "--reload_interval", "1", "--xai_cache_dir", str(tmp_path / "cache"),
    ]  # fmt: skip
    log = open(tmp_path / "tensorboard.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        base = "http://127.0.0.1:%d" % port
        entry = wait_for_xai(base, process)
        assert entry["tab_name"] == "XAI" and entry["loading_mechanism"]["type"] == "IFRAME"
        assert entry["loading_mechanism"]["module_path"].endswith("/data/plugin/xai/index.js")
        status, runs = fetch(base + "/data/plugin/xai/runs")
        assert status == 200 and {"a", "b", "c", "cnn"} <= {r["run"] for r in runs["runs"]}
        body = {
            "models": [{"run": "cnn", "step": 2}],
            "samples": {"run": "cnn", "name": "val"},
            "indices": [0, 1],
            "methods": [{"id": "grad_cam"}],
        }
        status, refused = fetch(base + "/data/plugin/xai/attributions", body)
        assert status == 403 and "X-XAI-Request" in refused["error"]
        status, answer = fetch(base + "/data/plugin/xai/attributions", body, {"X-XAI-Request": "1"})
        assert status == 200, answer
        cell = answer["cells"][0]
        assert cell["ok"] is True and encoding.decode_float32(cell).shape == (2, 28, 28)
    finally:
        process.terminate()
        process.wait(30)
        log.close()
