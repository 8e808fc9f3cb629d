"""files: atomic writes seen by a concurrent reader, clean-up after a failed write, manifest listing."""

import os
import threading

import numpy as np
import pytest
from tensorboard.compat import tf as tb_tf

from summary_helpers import all_files, tiny_dense
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


def test_failed_copy_leaves_nothing(tmp_path, monkeypatch):
    def broken_copy(src, dst, overwrite=False):
        with open(dst, "wb") as f:
            f.write(b"half")
        raise tb_tf.errors.ResourceExhaustedError(None, None, "disk full")

    monkeypatch.setattr(tb_tf.io.gfile, "copy", broken_copy)
    writer = summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=1), pytest.raises(XaiError, match="disk full"):
        summary.checkpoint(tiny_dense())
    assert all_files(files.plugin_dir(str(tmp_path))) == []


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
    files.write_bytes(path, b"two")
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
    good.update(kind="checkpoint", format_version=1, step=2)
    files.write_json(os.path.join(folder, "step-000000002.json"), good)
    files.write_json(os.path.join(folder, "step-000000001.json"), dict(good, step=1))
    files.write_json(os.path.join(folder, "step-000000003.json.tmp-abc"), dict(good, step=3))
    files.write_json(os.path.join(folder, "notes.json"), {"kind": "other"})
    with open(os.path.join(folder, "broken.json"), "w") as f:
        f.write("{")
    assert [m["step"] for m in files.checkpoint_manifests(str(tmp_path))] == [1, 2]
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
