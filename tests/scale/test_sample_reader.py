"""files.open_sample_set: a sample set read by rows at the images' byte offset inside the .npz, old sets
included, through tf.io.gfile for a filesystem that is not the local disk, its checksum checked once per
file version."""

import hashlib
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tb_xai_plugin import files, summary
from tb_xai_plugin.errors import XaiError

OLD_SET = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras2_logdir", "cnn", "plugins", "xai", "samples", "validation")


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """(data path, manifest, images, labels) of a 300-image set logged by summary.samples."""
    run = tmp_path_factory.mktemp("reader") / "run"
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (300, 8, 8, 3), dtype=np.uint8), rng.integers(0, 5, 300)
    writer = summary.create_file_writer(str(run))
    with writer.as_default():
        summary.samples("s", images, step=0, labels=labels, class_names=list("abcde"))
    writer.close()
    ((path, manifest),) = files.sample_listing(str(run))
    return path, manifest, images, labels


def test_rows_and_ranges_are_the_logged_images(logged):
    path, manifest, images, labels = logged
    reader = files.open_sample_set(path, manifest["sha256"])
    assert reader.loaded is None and reader.offset > 0  # read in place, not decompressed
    order = [299, 5, 6, 7, 5, 0, 150]  # any order, repeats, runs of neighbours
    assert np.array_equal(reader.rows(order), images[order])
    assert np.array_equal(reader.range(290, 400), images[290:])
    assert np.array_equal(reader.labels, labels) and reader.labels.dtype == np.int64
    with pytest.raises(XaiError, match="out of range"):
        reader.rows([300])


def test_an_old_sample_set_reads_by_rows():
    with open(OLD_SET + ".json") as f:
        manifest = json.load(f)
    reader = files.open_sample_set(OLD_SET + ".npz", manifest["sha256"])
    with np.load(OLD_SET + ".npz") as npz:
        images, labels = npz["images"], npz["labels"]
    assert reader.offset is not None and np.array_equal(reader.rows([4, 1]), images[[4, 1]])
    assert np.array_equal(reader.labels, labels)


def test_a_compressed_set_is_decompressed_once(tmp_path):
    images = np.arange(5 * 4 * 4 * 1, dtype=np.uint8).reshape(5, 4, 4, 1)
    path = str(tmp_path / "zipped.npz")
    np.savez_compressed(path, images=images, labels=np.arange(5))
    with open(path, "rb") as f:
        reader = files.open_sample_set(path, hashlib.sha256(f.read()).hexdigest())
    assert reader.loaded is not None and np.array_equal(reader.rows([3, 1]), images[[3, 1]])


def test_a_set_on_another_filesystem_reads_through_gfile(logged):
    path, manifest, images, _ = logged
    remote = "ram://scale-reader/s.npz"
    tf.io.gfile.makedirs("ram://scale-reader")
    tf.io.gfile.copy(path, remote, overwrite=True)
    assert files.local_path(remote) is None
    reader = files.open_sample_set(remote, manifest["sha256"])
    assert np.array_equal(reader.rows([3, 2, 200]), images[[3, 2, 200]]) and reader.range(0, 300).shape == images.shape


def test_the_checksum_is_checked_once_per_file_version(logged, tmp_path):
    path, manifest, images, _ = logged
    copy = str(tmp_path / "s.npz")
    with open(path, "rb") as f:
        data = f.read()
    with open(copy, "wb") as f:
        f.write(data)
    first = files.open_sample_set(copy, manifest["sha256"])
    assert files.open_sample_set(copy, manifest["sha256"]) is first  # remembered: not read again
    stamp = files.checked_stamp(copy, manifest["sha256"])
    assert stamp == [len(data), os.stat(copy).st_mtime_ns]
    damaged = bytearray(data)
    damaged[first.offset] ^= 0xFF  # one pixel changed: a rewritten file, a new version
    with open(copy, "wb") as f:
        f.write(bytes(damaged))
    os.utime(copy, ns=(stamp[1] + 10**9, stamp[1] + 10**9))
    with pytest.raises(XaiError, match="checksum"):
        files.open_sample_set(copy, manifest["sha256"])
    with pytest.raises(XaiError, match="checksum"):  # a stamp of another version is not trusted either
        files.open_sample_set(copy, manifest["sha256"], stamp=stamp)
    assert files.checked_stamp(copy, manifest["sha256"]) is None
