"""Live training: a training process logs a checkpoint about every second while clients poll the
runs and ask for predictions of the newest step. No errors, new checkpoints appear, and every
answer equals the model as it was logged at that step (nothing half-written is ever loaded).
The trainer logs a fixed number of steps and the clients poll until it is done, so a loaded
machine makes the test slower, not false."""

import concurrent.futures
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tb_xai_plugin import summary
from tests.plugin.conftest import CLASSES, SCALE, body_of, cnn_images, tiny_cnn
from tests.reliability.conftest import ROOT, HttpServed

STEPS = 6
CLIENTS = 3
POLL_S = 0.05
DEADLINE_S = 300  # how long clients poll at most on a very slow machine


@pytest.fixture()
def live(tmp_path):
    """A run 'live' with its samples and a first checkpoint (step 0), served with a warm worker; the folder
    of expected probabilities per step (step-0.npy here, the later ones from the trainer)."""
    logdir = str(tmp_path / "logdir")
    images, labels = cnn_images(8, seed=4)
    model, out = tiny_cnn(7), str(tmp_path / "expected")
    os.makedirs(out)
    np.save(os.path.join(out, "step-0.npy"), model.predict(images / np.float32(255), verbose=0))
    writer = summary.create_file_writer(os.path.join(logdir, "live"))
    with writer.as_default():
        summary.samples("val", images, step=0, labels=labels, class_names=CLASSES)
        summary.checkpoint(model, step=0, class_names=CLASSES, preprocessing=SCALE)
    writer.close()
    server = HttpServed(logdir, str(tmp_path / "cache"))
    server.plugin.catalog.ttl_s = 0.5
    warm = {"models": [{"run": "live", "step": 0}], "samples": {"run": "live", "name": "val"}, "indices": [7]}
    assert server.post("predictions", warm).status_code == 200  # the worker is up before training starts
    yield server, logdir, out
    server.close()


def client(server, number, done):
    """Poll runs and ask predictions of the newest step until the last step is answered after `done`: [(step, indices, entry)]."""
    answers = []
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline and not (done.is_set() and answers and answers[-1][0] == STEPS):
        runs = server.get("runs")
        assert runs.status_code == 200
        steps = [c["step"] for r in body_of(runs)["runs"] if r["run"] == "live" for c in r["checkpoints"]]
        indices = [number, number + 3]
        body = {"models": [{"run": "live", "step": steps[-1]}], "samples": {"run": "live", "name": "val"},
                "indices": indices, "top_k": 3}  # fmt: skip
        response = server.post("predictions", body)
        assert response.status_code == 200, response.get_data(as_text=True)
        answers.append((steps[-1], indices, body_of(response)["models"][0]))
        time.sleep(POLL_S)
    return answers


def test_clients_follow_a_run_that_logs_a_checkpoint_every_second(live):
    server, logdir, out = live
    trainer = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.live_trainer", logdir, out, str(STEPS)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    done = threading.Event()
    threading.Thread(target=lambda: (trainer.wait(), done.set()), daemon=True).start()
    try:
        assert trainer.stdout.readline().strip() == "ready"
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as executor:
            answers = [a for part in executor.map(lambda n: client(server, n, done), range(CLIENTS)) for a in part]
    finally:
        assert trainer.wait(DEADLINE_S) == 0
    seen = {step for step, _, _ in answers}
    assert STEPS in seen and len(seen) >= 2, sorted(seen)  # clients saw new checkpoints appear, up to the last
    for step, indices, entry in answers:
        assert entry["ok"] is True, entry
        probs = np.load(os.path.join(out, "step-%d.npy" % step))[indices]
        order = np.argsort(-probs, axis=1, kind="stable")[:, :3]
        np.testing.assert_allclose(entry["top_scores"], np.take_along_axis(probs, order, axis=1), atol=1e-5)
        assert entry["top_classes"] == order.tolist()
    assert server.plugin.pool.stats["died"] == 0
