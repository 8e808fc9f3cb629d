"""Live training: a run logs a checkpoint about every second while clients poll the runs and ask
for predictions of the newest step. No errors, new checkpoints appear, and every answer equals the
model as it was logged at that step (nothing half-written is ever loaded)."""

import concurrent.futures
import os
import threading
import time

import numpy as np
import pytest

from tb_xai_plugin import summary
from tests.plugin.conftest import CLASSES, SCALE, body_of, cnn_images, tiny_cnn
from tests.reliability.conftest import HttpServed

TRAIN_S = 8
CLIENTS = 3


@pytest.fixture()
def live(tmp_path):
    """A run 'live' with its samples and a first checkpoint (step 0), served; yields (server, writer, model, expected)."""
    logdir = str(tmp_path / "logdir")
    images, labels = cnn_images(8, seed=4)
    model = tiny_cnn(7)
    model.compile("adam", "sparse_categorical_crossentropy")
    writer = summary.create_file_writer(os.path.join(logdir, "live"))
    with writer.as_default():
        summary.samples("val", images, step=0, labels=labels, class_names=CLASSES)
        summary.checkpoint(model, step=0, class_names=CLASSES, preprocessing=SCALE)
    writer.flush()
    expected = {0: model.predict(images / np.float32(255), verbose=0)}
    server = HttpServed(logdir, str(tmp_path / "cache"))
    server.plugin.catalog.ttl_s = 0.5
    warm = {"models": [{"run": "live", "step": 0}], "samples": {"run": "live", "name": "val"}, "indices": [7]}
    assert server.post("predictions", warm).status_code == 200  # the worker is up before training starts
    yield server, writer, model, expected, images
    server.close()
    writer.close()


def test_clients_follow_a_run_that_logs_a_checkpoint_every_second(live):
    server, writer, model, expected, images = live
    x, y = images / np.float32(255), np.arange(len(images)) % 3
    stop = threading.Event()

    def train():
        step = 0
        with writer.as_default():
            while not stop.is_set():
                started = time.monotonic()
                model.fit(x, y, epochs=1, verbose=0)
                step += 1
                expected[step] = model.predict(x, verbose=0)  # before it is logged: clients may ask at once
                summary.checkpoint(model, step=step, class_names=CLASSES, preprocessing=SCALE)
                writer.flush()
                stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def client(number):
        answers = []
        deadline = time.monotonic() + TRAIN_S
        while time.monotonic() < deadline:
            runs = server.get("runs")
            assert runs.status_code == 200
            steps = [c["step"] for r in body_of(runs)["runs"] if r["run"] == "live" for c in r["checkpoints"]]
            body = {"models": [{"run": "live", "step": steps[-1]}], "samples": {"run": "live", "name": "val"},
                    "indices": [number, number + 3], "top_k": 3}  # fmt: skip
            response = server.post("predictions", body)
            assert response.status_code == 200, response.get_data(as_text=True)
            answers.append((steps[-1], number, body_of(response)["models"][0]))
        return answers

    trainer = threading.Thread(target=train)
    trainer.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(CLIENTS) as executor:
            answers = [a for part in executor.map(client, range(CLIENTS)) for a in part]
    finally:
        stop.set()
        trainer.join()
    assert len({step for step, _, _ in answers}) >= 3  # clients saw new checkpoints appear (step 0 and later)
    for step, number, entry in answers:
        assert entry["ok"] is True, entry
        probs = expected[step][[number, number + 3]]
        order = np.argsort(-probs, axis=1, kind="stable")[:, :3]
        np.testing.assert_allclose(entry["top_scores"], np.take_along_axis(probs, order, axis=1), atol=1e-5)
    assert server.plugin.pool.stats["died"] == 0
