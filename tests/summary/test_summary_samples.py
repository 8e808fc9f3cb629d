"""summary.samples: the .npz and its manifest, the index summary, replacement, shapes and dtypes."""

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from summary_helpers import CTX, all_files, multiplexer_provider, wait_for, xai_tensors
from tb_xai_plugin import files, metadata, summary
from tb_xai_plugin.errors import XaiError


def _log(run_dir, name, images, step=0, **kwargs):
    """Log one sample set into `run_dir` with a fresh writer; return the op's result."""
    writer = summary.create_file_writer(run_dir)
    with writer.as_default(step=step):
        result = summary.samples(name, images, **kwargs)
    writer.close()
    return result


def _load(run_dir, name):
    """(arrays, manifest) of a logged sample set."""
    data_path, manifest_path = files.sample_paths(run_dir, name)
    with np.load(data_path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, files.read_manifest(manifest_path, metadata.KIND_SAMPLES)


def test_uint8_rgb_with_labels_and_ids(tmp_path, rng):
    images = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    assert _log(str(tmp_path), "val", images, step=4, labels=[0, 1, 2, 1, 0], class_names=["a", "b", "c"], ids=list("vwxyz"))
    arrays, manifest = _load(str(tmp_path), "val")
    np.testing.assert_array_equal(arrays["images"], images)
    np.testing.assert_array_equal(arrays["labels"], [0, 1, 2, 1, 0])
    assert arrays["ids"].tolist() == list("vwxyz")
    assert set(metadata.SAMPLES_KEYS) <= set(manifest)
    assert manifest["count"] == 5 and manifest["image_shape"] == [8, 8, 3] and manifest["dtype"] == "uint8"
    assert manifest["has_labels"] and manifest["class_names"] == ["a", "b", "c"] and manifest["step"] == 4
    assert manifest["value_range"] == [float(images.min()), float(images.max())]
    assert manifest["sha256"] == files.sha256(files.sample_paths(str(tmp_path), "val")[0])


def test_index_summary_through_both_readers(tmp_path, rng, data_server):
    _log(str(tmp_path / "run"), "val", rng.random((3, 6, 6)), step=2)
    tag = metadata.SAMPLES_TAG_PREFIX + "val"
    for provider in (multiplexer_provider(str(tmp_path)), data_server(str(tmp_path))):
        tensors = wait_for(lambda: xai_tensors(provider), lambda t: "run" in t)
        (datum,) = tensors["run"][tag]
        index = json.loads(datum.numpy.item().decode("utf-8"))
        assert datum.step == 2 and index["name"] == "val" and index["count"] == 3 and index["image_shape"] == [6, 6, 1]
        listed = provider.list_tensors(CTX, experiment_id="", plugin_name="xai")
        assert metadata.parse_index_content(listed["run"][tag].plugin_content)["kind"] == "samples"


def test_grayscale_and_float_get_a_channel_axis(tmp_path, rng):
    _log(str(tmp_path), "gray", rng.random((4, 7, 9)).astype(np.float64))
    _log(str(tmp_path), "one", np.arange(12, dtype=np.int64).reshape(3, 4))
    gray, gray_manifest = _load(str(tmp_path), "gray")
    one, one_manifest = _load(str(tmp_path), "one")
    assert gray["images"].shape == (4, 7, 9, 1) and gray["images"].dtype == np.float32
    assert not gray_manifest["has_labels"] and gray_manifest["class_names"] is None
    np.testing.assert_array_equal(gray["labels"], [-1] * 4)
    assert gray["ids"].tolist() == ["0", "1", "2", "3"]
    assert one["images"].shape == (1, 3, 4, 1) and one["images"].dtype == np.uint8 and one_manifest["dtype"] == "uint8"


def test_one_hot_labels_become_indices(tmp_path, rng):
    _log(str(tmp_path), "hot", rng.random((3, 4, 4, 1)), labels=np.eye(3)[[2, 0, 1]], class_names=["a", "b", "c"])
    np.testing.assert_array_equal(_load(str(tmp_path), "hot")[0]["labels"], [2, 0, 1])


def test_relogging_replaces_and_leaves_no_temporaries(tmp_path, rng):
    _log(str(tmp_path), "val", rng.random((3, 4, 4, 1)))
    second = rng.random((2, 4, 4, 1)).astype(np.float32)
    _log(str(tmp_path), "val", second, step=9)
    arrays, manifest = _load(str(tmp_path), "val")
    np.testing.assert_array_equal(arrays["images"], second)
    assert manifest["count"] == 2 and manifest["step"] == 9
    assert all_files(files.samples_dir(str(tmp_path))) == ["val.json", "val.npz"]
    assert [m["name"] for m in files.sample_manifests(str(tmp_path))] == ["val"]


def test_thousands_of_images(tmp_path, rng):
    images = rng.integers(0, 256, (5000, 28, 28, 1), dtype=np.uint8)
    labels = rng.integers(0, 10, 5000)
    _log(str(tmp_path), "big", images, labels=labels, class_names=[str(i) for i in range(10)])
    arrays, manifest = _load(str(tmp_path), "big")
    assert manifest["count"] == 5000
    np.testing.assert_array_equal(arrays["images"], images)
    np.testing.assert_array_equal(arrays["labels"], labels)


def test_no_writer_writes_nothing(tmp_path, rng):
    assert summary.samples("val", rng.random((2, 4, 4)), step=1, logdir=str(tmp_path)) is False
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("name", ["../escape", "a/b", "", ".hidden", "x" * 65, "sp ace", None])
def test_bad_names_write_nothing(tmp_path, rng, name):
    with pytest.raises(XaiError, match="invalid name"):
        _log(str(tmp_path / "run"), name, rng.random((2, 4, 4)))
    assert not os.path.exists(files.plugin_dir(str(tmp_path / "run")))


@settings(max_examples=40, deadline=None)
@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 6), st.integers(1, 6), st.sampled_from([None, 1, 3])),
    dtype=st.sampled_from([np.uint8, np.int64, np.float16, np.float32, np.float64]),
    seed=st.integers(0, 2**16),
)
def test_prepared_images_keep_their_values(shape, dtype, seed):
    n, h, w, c = shape
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (n, h, w) + (() if c is None else (c,))).astype(dtype)
    prepared = summary.prepare_samples(raw, labels=rng.integers(0, 3, n), class_names=["a", "b", "c"])
    assert prepared.images.shape == (n, h, w, c or 1)
    assert prepared.images.dtype == (np.uint8 if np.dtype(dtype).kind in "ui" else np.float32)
    np.testing.assert_array_equal(prepared.images.reshape(raw.shape), raw.astype(prepared.images.dtype))
    assert prepared.labels.dtype == np.int64 and len(prepared.ids) == n
