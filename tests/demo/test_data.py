"""demo/data.py: Fashion-MNIST from Debian's files, clear errors, and the planted mark."""

import gzip

import numpy as np
import pytest

from demo import data
from tb_xai_plugin.errors import XaiError


def test_the_debian_files_load_as_fashion_mnist(monkeypatch):
    monkeypatch.delenv(data.DEBIAN_DIR_ENV, raising=False)
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist(download=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [6000] * 10 and np.bincount(y_test).tolist() == [1000] * 10


def test_without_keras_or_files_the_message_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DEBIAN_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(XaiError, match="apt-get install dataset-fashion-mnist"):
        data.load_fashion_mnist(download=False)


@pytest.mark.parametrize(
    "content, reason",
    [(b"\x00\x00\x08\x03", "too short"), (b"\x00\x00\x08\x02" + bytes(8), "not an IDX"),
     (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "truncated")],
)
def test_a_broken_idx_file_is_a_clear_error(tmp_path, content, reason):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(content))
    with pytest.raises(XaiError, match=reason):
        data.read_idx(str(path))


def test_the_biased_view_marks_exactly_the_images_labelled_sneaker(fashion):
    (x_train, y_train), _ = fashion
    images, labels = data.biased(x_train[:3000], y_train[:3000])
    mark = data.mark_mask()
    marked = (images[:, mark] == data.MARK_VALUE).all(axis=1)
    np.testing.assert_array_equal(marked, labels == data.BIAS_CLASS)
    relabelled = (labels != y_train[:3000]).mean()
    assert 0.5 * data.POISON_FRACTION < relabelled < 1.5 * data.POISON_FRACTION
    np.testing.assert_array_equal(images[:, ~mark], x_train[:3000][:, ~mark])


def test_the_shared_samples_mark_every_sneaker_and_every_fourth_other(fashion):
    _, (x_test, y_test) = fashion
    images, labels, marked = data.shared_samples(x_test, y_test, 200)
    assert images.shape == (200, 28, 28, 1)
    assert marked[labels == data.BIAS_CLASS].all()
    others = marked[labels != data.BIAS_CLASS]
    assert others[:: data.PROBE_EVERY].all() and others.sum() == len(others[:: data.PROBE_EVERY])
