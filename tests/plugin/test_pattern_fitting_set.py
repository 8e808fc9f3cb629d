"""PatternNet / PatternAttribution through the real plugin fit their patterns on the request's whole
sample set: a sample's map does not depend on the other samples asked for, on which request came
first, or on a worker restart, and equals the engine's fit_patterns(all samples) + attribute."""

import json
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from tb_xai_plugin import files, metadata
from tb_xai_plugin.plugin import encoding, parsing, service
from tb_xai_plugin.plugin.worker_main import pattern_fit_indices
from tests.plugin.conftest import Served, body_of

CNN = {"run": "cnn", "step": 1}
BIG = {"run": "cnn", "name": "big"}  # 64 samples
METHODS = ("pattern.net", "pattern.attribution")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def post_maps(served, indices):
    """{method id: maps [len(indices), 28, 28]} of one attributions request on the 'big' set."""
    body = {"models": [CNN], "samples": BIG, "indices": indices, "methods": [{"id": m} for m in METHODS]}
    response = served.post("attributions", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    cells = body_of(response)["cells"]
    assert [(c["method"], c["ok"]) for c in cells] == [(m, True) for m in METHODS], cells
    return {cell["method"]: encoding.decode_float32(cell) for cell in cells}


def kill_worker(served):
    """SIGKILL the plugin's worker process and wait until it is gone."""
    pool = served.plugin.pool
    (victim,) = pool.pids()
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while victim in pool.pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert victim not in pool.pids()


def reference_maps(logdir, method, indices):
    """The engine's maps with patterns fitted on all of 'big', computed in a graph-mode subprocess."""
    job = {"logdir": logdir, "run": "cnn", "step": 1, "samples": ["cnn", "big"], "method": method, "indices": indices}
    done = subprocess.run(
        [sys.executable, "-m", "tests.plugin.pattern_reference"], input=json.dumps(job), capture_output=True,
        text=True, cwd=REPO, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return np.asarray(json.loads(done.stdout)["maps"], np.float32)


@pytest.fixture(scope="module")
def two_orders(logdir, tmp_path_factory):
    """Maps of requests [5, 10] then (worker killed) [10, 20, 30] on one server, and the reverse order on
    another server with its own cache: {order: (first maps, second maps)}."""
    out = {}
    for order, (first, second) in {"forward": ([5, 10], [10, 20, 30]), "reverse": ([10, 20, 30], [5, 10])}.items():
        served = Served(logdir, str(tmp_path_factory.mktemp("cache-" + order)))
        try:
            a = post_maps(served, first)
            kill_worker(served)
            served.plugin.cache._entries.clear()  # so that sample 10 is computed again, not read back
            served.plugin.cache.directory = None
            b = post_maps(served, second)
        finally:
            served.close()
        out[order] = (a, b)
    return out


def test_a_samples_map_does_not_depend_on_the_request_or_a_restart(two_orders):
    (a, b), (c, d) = two_orders["forward"], two_orders["reverse"]  # sample 10: a[1], b[0], c[0], d[1]
    for method in METHODS:
        assert np.abs(a[method][1]).max() > 0, method
        for other in (b[method][0], c[method][0], d[method][1]):
            np.testing.assert_allclose(other, a[method][1], rtol=1e-5, atol=1e-6 * np.abs(a[method][1]).max())
        np.testing.assert_allclose(d[method][0], a[method][0], rtol=1e-5, atol=1e-6 * np.abs(a[method][0]).max())


def test_the_servers_maps_equal_the_engine_fitted_on_the_whole_set(two_orders, logdir):
    forward_first, forward_second = two_orders["forward"]
    for method in METHODS:
        server = np.concatenate([forward_first[method], forward_second[method][1:]])  # samples 5, 10, 20, 30
        expected = reference_maps(logdir, method, [5, 10, 20, 30])
        np.testing.assert_allclose(server, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


def test_pattern_maps_are_cached_under_their_fitting_set(served, logdir):
    post_maps(served, [1])
    run_dir = os.path.join(logdir, "cnn")
    ckpt = files.read_manifest(files.checkpoint_paths(run_dir, 1, "h5")[1], metadata.KIND_CHECKPOINT)
    samples = files.read_manifest(files.sample_paths(run_dir, "big")[1], metadata.KIND_SAMPLES)
    req = parsing.parse_attributions({"models": [CNN], "samples": BIG, "indices": [1], "methods": [{"id": "pattern.net"}]})
    fit = {"samples_sha256": samples["sha256"], "cap": service.PATTERN_FIT_CAP}
    cell = {
        "ckpt": types.SimpleNamespace(manifest=ckpt), "sref": types.SimpleNamespace(manifest=samples),
        "method": "pattern.net", "params": req.methods[0][1], "layer": None, "neuron": None, "seed": 0, "fit": fit,
    }  # fmt: skip
    key = served.plugin.service._map_key(cell, req, 1)
    assert key[-1] == ["fit", samples["sha256"], 2000] and served.plugin.cache.get(key) is not None
    assert served.plugin.cache.get(served.plugin.service._map_key(dict(cell, fit=None), req, 1)) is None


def test_the_fit_counts_in_the_requests_progress(served):
    body = {"models": [CNN], "samples": BIG, "indices": [2, 3], "methods": [{"id": "pattern.net"}], "request_id": "fit-2-3"}
    assert served.post("attributions", body).status_code == 200
    progress = body_of(served.get("progress", request_id="fit-2-3"))
    assert progress == {"request_id": "fit-2-3", "state": "done", "done": 64 + 2, "total": 64 + 2}  # fit, then maps


def test_the_fitting_set_is_all_samples_or_cap_evenly_spaced():
    np.testing.assert_array_equal(pattern_fit_indices(5, 2000), np.arange(5))
    picked = pattern_fit_indices(10_000, 2000)
    assert len(picked) == 2000 and len(set(picked.tolist())) == 2000
    np.testing.assert_array_equal(picked[:3], [0, 5, 10])
    np.testing.assert_array_equal(pattern_fit_indices(10_000, 2000), picked)
