"""Two worker processes (--xai_workers 2) compute two requests at the same time."""

import concurrent.futures
import time

import pytest

from tests.plugin.conftest import Served, body_of


@pytest.fixture(scope="module")
def two_workers(logdir, tmp_path_factory):
    server = Served(logdir, str(tmp_path_factory.mktemp("cache")), xai_workers=2)
    yield server
    server.close()


def slow_body(step):
    """Occlusion at every pixel of 64 images: about two seconds of work for one worker."""
    return {
        "models": [{"run": "cnn", "step": step}],
        "samples": {"run": "cnn", "name": "big"},
        "indices": list(range(64)),
        "methods": [{"id": "occlusion", "params": {"window": 1, "stride": 1}}],
    }


def test_two_requests_run_on_two_workers_at_once(two_workers):
    pool = two_workers.plugin.pool
    most_busy = 0
    with concurrent.futures.ThreadPoolExecutor(2) as executor:
        pending = [executor.submit(two_workers.post, "attributions", slow_body(step)) for step in (1, 2)]
        while not all(p.done() for p in pending):
            most_busy = max(most_busy, len(pool.busy_pids()))
            time.sleep(0.01)
    assert [p.result().status_code for p in pending] == [200, 200]
    assert all(body_of(p.result())["cells"][0]["ok"] for p in pending)
    assert most_busy == 2 and len(pool.pids()) == 2 and pool.stats["started"] == 2
