"""A logdir on gs:// (TensorFlow's own GCS filesystem against gcp-storage-emulator, tests/deploy/gcs.py), served by a
real `tensorboard --logdir gs://...`: runs are listed, samples read, checkpoints copied into the worker's
content-addressed cache (checked against the manifest's file_sha256) and explained; a broken manifest and a
tampered checkpoint reach the client as messages."""

import hashlib
import json
import os
import urllib.request

import pytest

from tests.deploy.conftest import CKPT, PREFIX


def fetch(url, body=None):
    """(status, parsed JSON or raw bytes) of GET (or POST `body`) `url`."""
    headers = {"X-XAI-Request": "1", "Content-Type": "application/json"} if body is not None else {}
    request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=180) as r:
            data = r.read()
            return r.status, json.loads(data) if r.headers.get_content_type() == "application/json" else data
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


@pytest.fixture(scope="module")
def remote(served):
    """(base URL of the xai routes, checkpoint cache folder, local logdir)."""
    port, cache, local = served
    return "http://127.0.0.1:%d%s/data/plugin/xai/" % (port, PREFIX), cache, local


def test_runs_on_gs_are_listed_and_a_broken_manifest_is_said(remote):
    base = remote[0]
    status, body = fetch(base + "runs")
    assert status == 200, body
    runs = {r["run"]: r for r in body["runs"]}
    assert [c["step"] for c in runs["cnn"]["checkpoints"]] == [1] and runs["cnn"]["sample_sets"][0]["name"] == "val"
    assert runs["broken"]["checkpoints"] == []  # its only checkpoint manifest is unreadable: left out, and said
    broken = [e for e in body["errors"] if e["run"] == "broken"]
    assert broken and "step-000000001.json" in broken[0]["message"], body["errors"]


def test_a_sample_image_is_read_from_gs(remote):
    status, png = fetch(remote[0] + "image?run=cnn&samples=val&index=2")
    assert status == 200 and png[:8] == b"\x89PNG\r\n\x1a\n"


def test_maps_come_from_a_checked_local_copy_of_the_remote_checkpoint(remote):
    base, cache, local = remote
    body = {"models": [{"run": "cnn", "step": 1}, {"run": "tampered", "step": 1}], "samples": {"run": "cnn", "name": "val"},
            "indices": [0, 1], "methods": [{"id": "gradient", "params": {}}]}  # fmt: skip
    status, answer = fetch(base + "attributions", body)
    assert status == 200, answer
    cells = {c["run"]: c for c in answer["cells"]}
    assert cells["cnn"]["ok"] is True and cells["cnn"]["shape"] == [2, 16, 16], cells["cnn"]
    with open(os.path.join(local, "cnn", CKPT + ".json")) as f:
        manifest = json.load(f)
    copy = os.path.join(cache, manifest["file_sha256"], manifest["file"])
    with open(copy, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == manifest["file_sha256"]
    assert cells["tampered"]["ok"] is False and "file_sha256" in cells["tampered"]["error"], cells["tampered"]
    assert os.listdir(cache) == [manifest["file_sha256"]]  # nothing kept of the tampered file, no temporary left
