"""files: atomic writes seen by a concurrent reader, clean-up after a failed write, manifest listing."""

import os
import threading

import numpy as np
import pytest
from tensorboard.compat import tf as tb_tf

from summary_helpers import FORMAT, SUFFIX, all_files, tiny_dense
from tb_xai_plugin import files, metadata, summary
from tb_xai_plugin.errors import NotFoundError, XaiError


def test_a_reader_never_sees_a_manifest_before_its_complete_file(tmp_path):
    run_dir = str(tmp_path)
    seen, problems, done = set(), [], threading.Event()

    def reader():
        while not done.is_set():
            for manifest in files.checkpoint_manifests(run_dir):
                data = os.path.join(files.checkpoints_dir(run_dir), manifest["file"])
                if files.sha256(data) != manifest["file_sha256"]:
                    problems.append(manifest["step"])
                seen.add(manifest["step"])

    thread = threading.Thread(target=reader)
    thread.start()
    model = tiny_dense()
    writer = summary.create_file_writer(run_dir)
    try:
        with writer.as_default():
            for step in range(30):
                model.layers[-1].bias.assign([step, -step])
                summary.checkpoint(model, step)
    finally:
        done.set()
        thread.join()
    assert problems == [] and len(seen) > 1
    assert not [f for f in all_files(run_dir) if files.is_temp(f)]


def test_failed_rename_leaves_nothing(tmp_path, monkeypatch):
    def broken_rename(src, dst, overwrite=False):
        raise tb_tf.errors.PermissionDeniedError(None, None, "rename refused")

    monkeypatch.setattr(tb_tf.io.gfile, "rename", broken_rename)
    writer = summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=1):
        with pytest.raises(XaiError, match="rename refused"):
            summary.checkpoint(tiny_dense())
        with pytest.raises(XaiError, match="rename refused"):
            summary.samples("val", np.zeros((2, 4, 4)))
    assert all_files(files.plugin_dir(str(tmp_path))) == []


def test_a_write_that_fails_half_way_leaves_nothing(tmp_path):
    def half(stream):
        stream.write(b"half")
        raise OSError("disk full")

    def bug(stream):
        stream.write(b"half")
        raise RuntimeError("a bug")

    with pytest.raises(XaiError, match="disk full"):
        files.write_stream(str(tmp_path / "a.npz"), half)
    with pytest.raises(RuntimeError, match="a bug"):
        files.write_stream(str(tmp_path / "a.npz"), bug)
    assert os.listdir(tmp_path) == []


def test_streamed_npz_and_its_hash(tmp_path):
    images = np.arange(2 * 5 * 5, dtype=np.uint8).reshape(2, 5, 5)
    path = str(tmp_path / "a.npz")
    digest = files.write_stream(path, lambda stream: np.savez(stream, images=images))
    assert digest == files.sha256(path)
    with np.load(path) as data:
        np.testing.assert_array_equal(data["images"], images)


def test_failed_manifest_removes_its_data(tmp_path, monkeypatch):
    def failing_json(path, obj):
        raise XaiError("cannot write %s: disk full" % path)

    monkeypatch.setattr(files, "write_json", failing_json)
    writer = summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=1):
        with pytest.raises(XaiError, match="disk full"):
            summary.checkpoint(tiny_dense())
        with pytest.raises(XaiError, match="disk full"):
            summary.samples("val", np.zeros((2, 4, 4)))
    assert all_files(files.plugin_dir(str(tmp_path))) == []


def test_write_bytes_replaces_atomically(tmp_path):
    path = str(tmp_path / "a.bin")
    files.write_bytes(path, b"one")
    assert files.write_bytes(path, b"two") == files.sha256(path)
    assert open(path, "rb").read() == b"two" and os.listdir(tmp_path) == ["a.bin"]


def test_copy_in_replaces_a_folder(tmp_path):
    for version in ("old", "new"):
        source = tmp_path / version
        os.makedirs(source / "variables")
        (source / "saved_model.pb").write_text(version)
        (source / "variables" / version).write_text(version)
    target = str(tmp_path / "out" / "step")
    os.makedirs(tmp_path / "out")
    files.copy_in(str(tmp_path / "old"), target)
    files.copy_in(str(tmp_path / "new"), target)
    assert all_files(str(tmp_path / "out")) == ["step/saved_model.pb", "step/variables/new"]
    assert open(os.path.join(target, "saved_model.pb")).read() == "new"


def test_manifest_listing_skips_temporaries_and_foreign_files(tmp_path):
    folder = files.ensure_dir(files.checkpoints_dir(str(tmp_path)))
    good = {k: None for k in metadata.CHECKPOINT_KEYS}
    good.update(kind="checkpoint", format_version=1, step=2, format="h5", file="step-000000002.h5")
    files.write_json(os.path.join(folder, "step-000000002.json"), good)
    files.write_json(os.path.join(folder, "step-000000001.json"), dict(good, step=1, format="savedmodel", file="step-000000001"))
    files.write_json(os.path.join(folder, "step-000000003.json.tmp-abc"), dict(good, step=3, file="step-000000003.h5"))
    files.write_json(os.path.join(folder, "step-000000005.json"), dict(good, step=6, file="step-000000006.h5"))  # not its name
    files.write_json(os.path.join(folder, "step-000000007.json"), dict(good, step=7, file="../../elsewhere.h5"))
    files.write_json(os.path.join(folder, "step-000000008.json"), dict(good, step=8, file="step-000000008"))  # h5 names a folder
    files.write_json(os.path.join(folder, "notes.json"), {"kind": "other"})
    with open(os.path.join(folder, "broken.json"), "w") as f:
        f.write("{")
    assert [m["step"] for m in files.checkpoint_manifests(str(tmp_path))] == [1, 2]
    assert [path for path, _ in files.checkpoint_listing(str(tmp_path))] == [os.path.join(folder, "step-000000001"), os.path.join(folder, "step-000000002.h5")]
    assert files.sample_manifests(str(tmp_path)) == []
    with pytest.raises(NotFoundError):
        files.read_manifest(os.path.join(folder, "step-000000009.json"), metadata.KIND_CHECKPOINT)
    with pytest.raises(XaiError, match="unreadable manifest"):
        files.read_manifest(os.path.join(folder, "broken.json"), metadata.KIND_CHECKPOINT)
    newer = dict(good, format_version=metadata.FORMAT_VERSION + 1)
    files.write_json(os.path.join(folder, "step-000000004.json"), newer)
    with pytest.raises(XaiError, match="newer tb-xai"):
        files.read_manifest(os.path.join(folder, "step-000000004.json"), metadata.KIND_CHECKPOINT)


def test_paths_refuse_bad_names(tmp_path):
    with pytest.raises(XaiError):
        files.sample_paths(str(tmp_path), "../../etc/passwd")
    assert files.checkpoint_paths("r", 42, "h5")[0].endswith(os.path.join("plugins", "xai", "checkpoints", "step-000000042.h5"))
    assert files.checkpoint_paths("r", 42, "savedmodel")[0].endswith("step-000000042")


def test_a_non_local_file_system(rng):
    """ram:// (TensorFlow's in-memory file system) stands in for gs://: nothing may assume a local path."""
    run_dir = "ram://tb_xai_test/run"
    model = tiny_dense()
    writer = summary.create_file_writer(run_dir)
    with writer.as_default(step=2):
        assert summary.checkpoint(model) and summary.samples("val", rng.random((3, 4, 4)))
        model.layers[-1].bias.assign([1.0, 2.0])
        assert summary.checkpoint(model)  # replaces step 2
    writer.close()
    (manifest,) = files.checkpoint_manifests(run_dir)
    assert manifest["file_sha256"] == files.sha256(files.checkpoint_paths(run_dir, 2, FORMAT)[0])
    (sample_set,) = files.sample_manifests(run_dir)
    assert sample_set["count"] == 3 and sample_set["sha256"] == files.sha256(files.sample_paths(run_dir, "val")[0])
    assert sorted(tb_tf.io.gfile.listdir(files.checkpoints_dir(run_dir))) == sorted(["step-000000002" + SUFFIX, "step-000000002.json"])
