"""Fixtures of the reliability tests: a logdir of three tiny models, the plugin behind a real
threaded HTTP server, and the engine called directly in a subprocess (graph mode for iNNvestigate) as the reference.
"""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from werkzeug import serving

from tests.conftest import free_port
from tests.plugin.conftest import SCALE, Served, cnn_images, tiny_cnn, write_run

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = [("m1", 1), ("m2", 1), ("m3", 1)]
SAMPLES = {"run": "m1", "name": "val"}
SAMPLE_COUNT = 16


def build_three_models(root):
    """Runs m1, m2, m3 with one tiny CNN each (step 1); m1 also holds the sample set 'val' of 16 images."""
    images, labels = cnn_images(SAMPLE_COUNT, seed=3)
    for seed, (run, step) in enumerate(MODELS, start=11):
        sets = [("val", images, labels)] if run == "m1" else []
        write_run(root, run, {step: tiny_cnn(seed)}, sets, preprocessing=SCALE)
    return root


def engine_reference(logdir, jobs, timeout_s=300):
    """{job id: answer} from the engine called directly in a spawned process, as a worker (engine_reference.py)."""
    request = json.dumps({"logdir": logdir, "jobs": jobs})
    done = subprocess.run(
        [sys.executable, "-m", "tests.reliability.engine_reference"],
        input=request, capture_output=True, text=True, cwd=ROOT, timeout=timeout_s, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


class HttpServed(Served):
    """A Served plugin also listening on a real port (werkzeug's threaded server), for concurrent clients."""

    def __init__(self, logdir, cache_dir, **flags):
        super().__init__(logdir, cache_dir, **flags)
        self.port = free_port()
        self.server = serving.make_server("127.0.0.1", self.port, self.app, threaded=True)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = "http://127.0.0.1:%d/data/plugin/xai/" % self.port

    def close(self):
        """Stop listening, then the plugin."""
        self.server.shutdown()
        super().close()


@pytest.fixture(scope="session")
def three_models(tmp_path_factory):
    """The shared logdir of three models (read-only: tests that change files copy it first)."""
    return build_three_models(str(tmp_path_factory.mktemp("three")))


def assert_maps_match(cell, reference, atol=1e-4):
    """A cell's maps, targets and scores equal the engine's (float32 maps to `atol` of their scale)."""
    from tb_xai_plugin.plugin import encoding

    maps = encoding.decode_float32(cell)
    expected = np.asarray(reference["maps"], np.float32)
    assert maps.shape == expected.shape
    scale = max(float(np.abs(expected).max()), 1e-12)
    np.testing.assert_allclose(maps, expected, atol=atol * scale, rtol=0)
    assert cell["targets"] == reference["targets"]
    np.testing.assert_allclose(cell["scores"], reference["scores"], atol=1e-5)


def assert_predictions_match(model_entry, reference, top_k):
    """A predictions entry's top-k classes and scores equal the engine's probabilities sorted."""
    probs = np.asarray(reference["probs"])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :top_k]
    assert model_entry["ok"] is True, model_entry
    assert model_entry["top_classes"] == order.tolist()
    np.testing.assert_allclose(model_entry["top_scores"], np.take_along_axis(probs, order, axis=1), atol=1e-5)
