"""One big sample set for the scale tests, written once per session: 20,000 random 64x64x3 uint8 images
(245 MB: too big to hold whole within the memory bounds the tests assert, quick to write), a small set
of the same shape to warm the routes up, and two tiny 64x64x3 classifiers."""

import numpy as np
import pytest
import tensorflow as tf

from tb_xai_plugin import summary

BIG_COUNT = 20_000
SHAPE = (64, 64, 3)
CLASSES = ["c%d" % i for i in range(10)]
SCALE = {"type": "scale", "scale": 1.0 / 255.0, "offset": 0.0}
RUN = "big"


def small_cnn(seed):
    """64x64x3 -> conv(4, stride 4) -> global average pool -> dense(10, softmax), seeded."""
    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input(SHAPE)
    x = tf.keras.layers.Conv2D(4, 3, strides=4, activation="relu", name="conv")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf.keras.layers.Dense(len(CLASSES), activation="softmax", name="dense")(x)
    return tf.keras.Model(inputs, outputs, name="small_cnn")


def random_images(count, seed):
    """`count` random uint8 images of SHAPE and their labels."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count,) + SHAPE, dtype=np.uint8), rng.integers(0, len(CLASSES), count)


@pytest.fixture(scope="session")
def big_logdir(tmp_path_factory):
    """A logdir (under /tmp) whose run 'big' has checkpoints at steps 1 and 2 and sample sets 'big' and 'small'."""
    logdir = tmp_path_factory.mktemp("scale_logdir")
    writer = summary.create_file_writer(str(logdir / RUN))
    with writer.as_default():
        for step in (1, 2):
            summary.checkpoint(small_cnn(step), step=step, class_names=CLASSES, preprocessing=SCALE)
        images, labels = random_images(32, seed=1)
        summary.samples("small", images, step=0, labels=labels, class_names=CLASSES)
        images, labels = random_images(BIG_COUNT, seed=2)
        summary.samples("big", images, step=0, labels=labels, class_names=CLASSES)
        del images
    writer.close()
    return str(logdir)
