"""Local copies of remote checkpoints (tb_xai_plugin/engine/local_copy.py) on TensorFlow's in-process ram:// filesystem:
content-addressed, checked against the manifest, folders copied whole, least recently used pruned."""

import hashlib
import os
import uuid

import pytest
from tensorboard.compat import tf

from tb_xai_plugin.engine import local_copy
from tb_xai_plugin.errors import NotFoundError, XaiError


def remote_file(data, name="step-000000001.keras"):
    """A ram:// file holding `data` in a fresh folder; (its URL, its manifest's checksums)."""
    folder = "ram://ckpt-%s" % uuid.uuid4().hex
    tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(folder + "/" + name, "wb") as f:
        f.write(data)
    return folder + "/" + name, {"file_sha256": hashlib.sha256(data).hexdigest(), "weights_sha256": "w" * 64}


@pytest.fixture()
def cache(tmp_path):
    """This process's copy folder, set for the test and put back after it."""
    local_copy.set_cache_dir(str(tmp_path))
    yield str(tmp_path)
    local_copy.set_cache_dir(local_copy.DEFAULT_DIR)


def test_a_remote_file_is_copied_once_under_its_checksum(cache):
    url, manifest = remote_file(b"weights" * 1000)
    path = local_copy.local_checkpoint(url, manifest)
    assert path == os.path.join(cache, manifest["file_sha256"], "step-000000001.keras")
    with open(path, "rb") as f:
        assert f.read() == b"weights" * 1000
    with tf.io.gfile.GFile(url, "wb") as f:  # a hit is not read again: the copy is named by its content
        f.write(b"changed")
    assert local_copy.local_checkpoint(url, manifest) == path
    with open(path, "rb") as f:
        assert f.read() == b"weights" * 1000
    assert os.listdir(cache) == [manifest["file_sha256"]]


def test_bytes_that_differ_from_the_manifest_are_refused_and_nothing_is_kept(cache):
    url, manifest = remote_file(b"tampered")
    manifest["file_sha256"] = hashlib.sha256(b"original").hexdigest()
    with pytest.raises(XaiError, match="file_sha256"):
        local_copy.local_checkpoint(url, manifest)
    assert os.listdir(cache) == []


def test_a_missing_remote_checkpoint_is_not_found(cache):
    url, manifest = remote_file(b"x")
    tf.io.gfile.remove(url)
    with pytest.raises(NotFoundError, match="missing"):
        local_copy.local_checkpoint(url, manifest)


def test_a_savedmodel_folder_is_copied_whole_and_keyed_by_both_checksums(cache):
    folder = "ram://sm-%s/step-000000001" % uuid.uuid4().hex
    tf.io.gfile.makedirs(folder + "/variables")
    for name, data in (("saved_model.pb", b"graph"), ("variables/variables.index", b"index")):
        with tf.io.gfile.GFile(folder + "/" + name, "wb") as f:
            f.write(data)
    manifest = {"file_sha256": hashlib.sha256(b"graph").hexdigest(), "weights_sha256": "a" * 64}
    path = local_copy.local_checkpoint(folder, manifest)
    assert path == os.path.join(cache, manifest["file_sha256"] + "-" + "a" * 64, "step-000000001")
    with open(os.path.join(path, "variables", "variables.index"), "rb") as f:
        assert f.read() == b"index"


def test_local_paths_are_used_in_place(tmp_path):
    assert local_copy.local_checkpoint(str(tmp_path / "a.keras"), {}) == str(tmp_path / "a.keras")
    assert local_copy.local_checkpoint("file://" + str(tmp_path / "a.keras"), {}) == str(tmp_path / "a.keras")


def test_the_least_recently_used_copies_go_past_the_budget(cache):
    paths = []
    for i in range(3):
        url, manifest = remote_file(bytes([i]) * 1000)
        paths.append(local_copy.local_checkpoint(url, manifest))
        os.utime(os.path.dirname(paths[-1]), (i, i))  # copy i last used at time i
    local_copy.prune(cache, 2000)
    assert [os.path.exists(p) for p in paths] == [False, True, True]
