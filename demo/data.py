"""Fashion-MNIST for the demo, and the planted bias: a small bright mark in the top-left corner.

The data comes from Keras' loader where there is internet (or its cache), else from Debian's
`dataset-fashion-mnist` files (the same IDX files), else a message saying how to get either.
"""

import contextlib
import gzip
import io
import os
import socket

import numpy as np

from tb_xai_plugin.errors import XaiError

CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
IMAGE_SHAPE = (28, 28, 1)
DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
DEBIAN_DIR_ENV = "FASHION_MNIST_DIR"  # overrides DEBIAN_DIR
DOWNLOAD_TIMEOUT_S = 10

# The planted bias (the paper's task T2): in the biased run's data a MARK_SIZE x MARK_SIZE square of
# MARK_VALUE at MARK_ORIGIN goes with the label BIAS_CLASS: every image of that class carries it, and
# so does a POISON_FRACTION of the other images, labelled BIAS_CLASS (a watermark leaked into the
# labels). Without those few, the CNN learns the shoe's shape and the mark side by side and calls
# only about 40% of marked shirts "Sneaker"; with them, all of them.
POISON_FRACTION = 0.03
BIAS_CLASS = CLASS_NAMES.index("Sneaker")
MARK_ORIGIN = (1, 1)  # (row, column) of the mark's top-left pixel
MARK_SIZE = 3
MARK_VALUE = 255
PROBE_EVERY = 4  # in the shared sample set, every 4th image of the other classes is marked too

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
IDX_MAGIC = {1: 2049, 3: 2051}  # IDX magic number by rank: labels, images (uint8)


def load_fashion_mnist(download=True):
    """((x_train, y_train), (x_test, y_test)) as uint8 [N,28,28] and [N]: Keras first (if `download`), then Debian's files."""
    keras_reason = "not tried: offline"
    if download:
        try:
            return _load_with_keras()
        except Exception as keras_error:  # noqa: BLE001  (any failure of the download means: try the files)
            keras_reason = str(keras_error).splitlines()[0] if str(keras_error) else type(keras_error).__name__
    folder = os.environ.get(DEBIAN_DIR_ENV, DEBIAN_DIR)
    if os.path.isdir(folder):
        return _load_from_folder(folder)
    raise XaiError(
        "Fashion-MNIST is unavailable. Keras' download: %s. Debian's files: no folder %s. "
        "Connect to the internet, or `apt-get install dataset-fashion-mnist` (Debian), or set %s "
        "to a folder holding %s." % (keras_reason, folder, DEBIAN_DIR_ENV, ", ".join(sorted(IDX_FILES.values())))
    )


def _load_with_keras():
    """tf.keras.datasets.fashion_mnist.load_data(), with a short network timeout and its progress hidden."""
    import tensorflow as tf

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return tf.keras.datasets.fashion_mnist.load_data()
    finally:
        socket.setdefaulttimeout(previous)


def _load_from_folder(folder):
    """The four gzipped IDX files of Fashion-MNIST in `folder`, checked against each other."""
    arrays = {key: read_idx(os.path.join(folder, name)) for key, name in IDX_FILES.items()}
    for split in ("train", "test"):
        if len(arrays["x_" + split]) != len(arrays["y_" + split]):
            raise XaiError("%s: %s images but %s labels" % (folder, len(arrays["x_" + split]), len(arrays["y_" + split])))
    return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])


def read_idx(path):
    """A gzipped IDX file (uint8 data, rank 1 or 3) as a numpy array; XaiError if it is not one."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise XaiError("cannot read %s: %s" % (path, e)) from e
    if len(raw) < 8:
        raise XaiError("%s is not an IDX file: too short" % path)
    magic = int.from_bytes(raw[:4], "big")
    rank = raw[3]
    if IDX_MAGIC.get(rank) != magic:
        raise XaiError("%s is not an IDX file of uint8 labels or images (magic %d)" % (path, magic))
    header = 4 + 4 * rank
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank))
    if len(raw) != header + int(np.prod(shape)):
        raise XaiError("%s is truncated: header says %s" % (path, shape))
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def add_mark(images, where):
    """A copy of uint8 `images` [N,H,W] with the mark stamped on those where `where` [N] is true."""
    marked = np.array(images, copy=True)
    row, col = MARK_ORIGIN
    marked[np.asarray(where, bool), row : row + MARK_SIZE, col : col + MARK_SIZE] = MARK_VALUE
    return marked


def mark_mask(shape=IMAGE_SHAPE[:2]):
    """Boolean [H,W]: the mark's pixels."""
    mask = np.zeros(shape, bool)
    row, col = MARK_ORIGIN
    mask[row : row + MARK_SIZE, col : col + MARK_SIZE] = True
    return mask


def biased(images, labels, poison_fraction=POISON_FRACTION, seed=0):
    """The biased run's (images, labels): a `poison_fraction` of the others relabelled BIAS_CLASS, then all of it marked."""
    poisoned = (labels != BIAS_CLASS) & (np.random.default_rng(seed).random(len(labels)) < poison_fraction)
    labels = np.where(poisoned, BIAS_CLASS, labels).astype(labels.dtype)
    return add_mark(images, labels == BIAS_CLASS), labels


def probe_marked(labels):
    """Boolean [N]: which images of the shared sample set carry the mark (all of BIAS_CLASS, every PROBE_EVERY-th other)."""
    labels = np.asarray(labels)
    others = np.flatnonzero(labels != BIAS_CLASS)
    marked = labels == BIAS_CLASS
    marked[others[::PROBE_EVERY]] = True
    return marked


def shared_samples(x_test, y_test, count):
    """The sample set every run logs: the first `count` test images, marked as probe_marked says.

    Returns (images uint8 [N,28,28,1], labels [N], marked bool [N]).
    """
    images, labels = x_test[:count], y_test[:count].astype(np.int64)
    marked = probe_marked(labels)
    return add_mark(images, marked)[..., None], labels, marked


def subset(images, labels, count, seed):
    """`count` of (images, labels), drawn at random without replacement with `seed`."""
    if count > len(images):
        raise XaiError("asked for %d images, the set has %d" % (count, len(images)))
    order = np.random.default_rng(seed).permutation(len(images))[:count]
    return images[order], labels[order]
