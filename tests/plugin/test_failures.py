"""Damage and races: a killed worker, a corrupted checkpoint, checkpoints written while being read."""

import concurrent.futures
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from tb_xai_plugin import metadata, summary
from tests.plugin.conftest import CLASSES, SCALE, Served, body_of, checkpoint_file, tiny_cnn

VAL = {"run": "cnn", "name": "val"}


def checkpoints_dir(logdir, run):
    return os.path.join(logdir, run, *metadata.PLUGIN_DIR, metadata.CHECKPOINTS_DIR)


@pytest.fixture(scope="module")
def damaged(logdir, tmp_path_factory):
    """A copy of the shared logdir whose cnn step-2 checkpoint holds garbage bytes."""
    root = str(tmp_path_factory.mktemp("damaged"))
    shutil.copytree(logdir, root, dirs_exist_ok=True)
    path = checkpoint_file(os.path.join(root, "cnn"), 2)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
        f.seek(0)
        f.write(b"not a model file" * 64)
    server = Served(root, str(tmp_path_factory.mktemp("cache")))
    server.plugin.catalog.ttl_s = 0.0
    yield server
    server.close()


def attribution_body(**overrides):
    body = {
        "models": [{"run": "cnn", "step": 1}, {"run": "cnn", "step": 2}],
        "samples": VAL,
        "indices": [0, 1],
        "methods": [{"id": "grad_cam"}],
    }
    body.update(overrides)
    return body


def wait_for(condition, timeout_s=120.0):
    """Poll until condition() is truthy; return its value (fail the test on timeout)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    pytest.fail("timed out waiting")


def test_a_killed_worker_fails_only_its_request_and_is_replaced(damaged):
    pool = damaged.plugin.pool
    with concurrent.futures.ThreadPoolExecutor(1) as executor:
        pending = executor.submit(damaged.post, "attributions", attribution_body(request_id="doomed"))
        victim = wait_for(pool.busy_pids)[0]  # the request is on the worker (still starting up)
        os.kill(victim, signal.SIGKILL)
        response = pending.result(timeout=120)
    assert response.status_code == 503, response.get_data(as_text=True)
    assert "died" in body_of(response)["error"] and "retry" in body_of(response)["error"]
    assert pool.stats["died"] == 1
    retry = damaged.post("attributions", attribution_body())
    assert retry.status_code == 200
    assert body_of(retry)["cells"][0]["ok"] is True
    assert pool.pids() and victim not in pool.pids()


def test_a_corrupted_checkpoint_fails_only_its_cells(damaged):
    body = attribution_body(methods=[{"id": "grad_cam"}, {"id": "occlusion", "params": {"window": 14}}])
    response = damaged.post("attributions", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    cells = body_of(response)["cells"]
    assert [(c["step"], c["ok"]) for c in cells] == [(1, True), (1, True), (2, False), (2, False)]
    assert "step-000000002" in cells[2]["error"] or "step 2" in cells[2]["error"]
    predictions = body_of(damaged.post("predictions", {"models": body["models"], "samples": VAL, "indices": [0]}))
    assert [m["ok"] for m in predictions["models"]] == [True, False]
    assert damaged.post("attributions", attribution_body(models=[{"run": "cnn", "step": 1}])).status_code == 200


def test_a_checkpoint_without_its_manifest_is_not_listed(damaged):
    folder = checkpoints_dir(damaged.logdir, "cnn")
    first = checkpoint_file(os.path.join(damaged.logdir, "cnn"), 1)
    shutil.copy(first, os.path.join(folder, os.path.basename(first).replace("000000001", "000000007")))
    with open(os.path.join(folder, "step-000000008.json"), "w") as f:
        f.write('{"kind": "checkpoint", "step": 8, "fi')  # a manifest cut short
    with open(os.path.join(folder, ".step-000000009.json.tmp"), "w") as f:
        f.write("{}")
    runs = body_of(damaged.get("runs"))["runs"]
    assert [c["step"] for c in next(r for r in runs if r["run"] == "cnn")["checkpoints"]] == [1, 2]
    assert damaged.get("layers", run="cnn", step="7").status_code == 404
    assert damaged.get("layers", run="cnn", step="8").status_code == 404


def test_a_sample_set_changed_after_logging_is_refused_by_every_route(logdir, tmp_path):
    root = str(tmp_path / "logdir")
    shutil.copytree(logdir, root)
    path = os.path.join(root, "cnn", *metadata.PLUGIN_DIR, metadata.SAMPLES_DIR, "val.npz")
    with np.load(path) as data:
        arrays = dict(data)
    np.savez(path, **dict(arrays, images=255 - arrays["images"]))  # a valid sample set, not the one its manifest describes
    server = Served(root, str(tmp_path / "cache"))
    try:
        image = server.get("image", run="cnn", samples="val", index="0")
        assert image.status_code == 400 and "checksum" in body_of(image)["error"]
        body = {"models": [{"run": "cnn", "step": 1}], "samples": VAL, "indices": [0]}
        predictions = server.post("predictions", body)  # the labels are read in the server
        assert predictions.status_code == 400 and "checksum" in body_of(predictions)["error"]
        attributions = server.post("attributions", dict(body, methods=[{"id": "gradient"}]))  # checked before a worker reads it
        assert attributions.status_code == 400 and "checksum" in body_of(attributions)["error"]
        assert server.plugin.pool.stats["submitted"] == 0
    finally:
        server.close()


def test_checkpoints_written_while_the_catalog_reads(damaged):
    def train():
        writer = summary.create_file_writer(os.path.join(damaged.logdir, "cnn"))
        with writer.as_default():
            for step in range(20, 26):
                summary.checkpoint(tiny_cnn(step), step=step, class_names=CLASSES, preprocessing=SCALE)
        writer.close()

    trainer = threading.Thread(target=train)
    trainer.start()
    seen = set()
    while trainer.is_alive():
        response = damaged.get("runs")
        assert response.status_code == 200
        cnn = next(r for r in body_of(response)["runs"] if r["run"] == "cnn")
        for checkpoint in cnn["checkpoints"]:
            seen.add(checkpoint["step"])
            path = checkpoint_file(os.path.join(damaged.logdir, "cnn"), checkpoint["step"])
            assert os.path.exists(path)  # whatever is listed is complete
    trainer.join()
    final = next(r for r in body_of(damaged.get("runs"))["runs"] if r["run"] == "cnn")
    assert [c["step"] for c in final["checkpoints"]] == [1, 2, 20, 21, 22, 23, 24, 25]
    response = damaged.post("predictions", {"models": [{"run": "cnn", "step": 25}], "samples": VAL, "indices": [0]})
    images = np.load(os.path.join(damaged.logdir, "cnn", *metadata.PLUGIN_DIR, "samples", "val.npz"))["images"]
    expected = tiny_cnn(25).predict(images[:1] / np.float32(255), verbose=0)
    assert body_of(response)["models"][0]["top_classes"][0][0] == int(expected.argmax())


def test_a_request_past_its_time_limit_replaces_the_stuck_worker(damaged):
    service, pool = damaged.plugin.service, damaged.plugin.pool
    damaged.post("predictions", {"models": [{"run": "cnn", "step": 1}], "samples": VAL, "indices": [3]})  # warm
    before = pool.pids()
    service.timeout_s = 0.2  # occlusion at every pixel of 64 images takes about 2 s
    try:
        body = attribution_body(
            models=[{"run": "cnn", "step": 1}], samples={"run": "cnn", "name": "big"}, indices=list(range(64)),
            methods=[{"id": "occlusion", "params": {"window": 1, "stride": 1}}],
        )  # fmt: skip
        response = damaged.post("attributions", body)
    finally:
        service.timeout_s = 900.0
    assert response.status_code == 503 and "longer than" in body_of(response)["error"]
    wait_for(lambda: pool.stats["died"] >= 2)
    after = damaged.post("attributions", attribution_body(models=[{"run": "cnn", "step": 1}]))
    assert after.status_code == 200 and not set(before) & set(pool.pids())
