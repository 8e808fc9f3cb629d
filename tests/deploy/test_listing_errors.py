"""GET runs says what of a (local) logdir it could not list, through TensorBoard's WSGI app: a run whose
plugins/xai is a file, not a folder, and a run whose checkpoint manifest is not JSON."""

import json
import os

import pytest
import tensorflow as tf

from tests.deploy.conftest import CKPT, write_run
from tests.plugin.conftest import Served


@pytest.fixture(scope="module")
def listing(tmp_path_factory):
    """GET runs' JSON over a logdir with runs 'good', 'clash' (plugins/xai is a file) and 'broken' (bad manifest)."""
    logdir = str(tmp_path_factory.mktemp("logdir"))
    write_run(logdir, "good")
    write_run(logdir, "broken")
    with open(os.path.join(logdir, "broken", CKPT + ".json"), "w") as f:
        f.write("{not json")
    with tf.summary.create_file_writer(os.path.join(logdir, "clash")).as_default():
        tf.summary.scalar("loss", 1.0, step=0)
    os.makedirs(os.path.join(logdir, "clash", "plugins"))
    with open(os.path.join(logdir, "clash", "plugins", "xai"), "w") as f:
        f.write("not a folder")
    served = Served(logdir, str(tmp_path_factory.mktemp("cache")))
    try:
        response = served.get("runs")
        assert response.status_code == 200
        yield json.loads(response.get_data())
    finally:
        served.close()


def test_runs_that_cannot_be_listed_are_said_not_dropped(listing):
    assert [r["run"] for r in listing["runs"]] == ["broken", "good"]  # 'broken' still has its sample set
    said = {e["run"]: e["message"] for e in listing["errors"]}
    assert set(said) == {"broken", "clash"}, listing["errors"]
    assert "step-000000001.json is skipped" in said["broken"]
    assert os.path.join("clash", "plugins", "xai") + " cannot be listed" in said["clash"], said["clash"]
