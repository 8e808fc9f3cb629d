"""A Rescaling-first CNN whose class a small planted mark decides, trained and logged as a user does (issue 17's goal).

    python shortcut_task.py DIRECTORY    eager, in this interpreter's stack: train, log runs rescaling and plain

Class 1: uint8 noise in [0, NOISE] with a MARK x MARK square of 255 somewhere (MARK_SHARE of the image);
class 0: the noise alone. The model's first layer is Rescaling(1/255), as in most Keras tutorials, and it
is fed the uint8-range images themselves (preprocessing "none"), so only a canonizer that folds the
Rescaling lets LRP explain it. The run "plain" holds the same trained layers without the Rescaling, its
scale recorded as preprocessing instead: what the canonizer's rewrite must be equivalent to.
`log(directory)` runs this script from the test process (any stack).
"""

import os
import subprocess
import sys

import numpy as np

SIZE = 18
MARK = 5
MARK_SHARE = MARK * MARK / SIZE**2  # 7.7 % of the image
NOISE = 25  # the background's brightest value: a dim scene, 0.1 of 255
CLASS_NAMES = ["plain", "marked"]
SCALE = {"type": "scale", "scale": 1 / 255, "offset": 0.0}


def make_images(count, seed):
    """(uint8-range float32 images [N, SIZE, SIZE, 3], labels [N], mark corners [N, 2] (-1 for no mark))."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, NOISE + 1, size=(count, SIZE, SIZE, 3)).astype(np.float32)
    labels = np.arange(count) % 2
    corners = np.full((count, 2), -1)
    for i in np.flatnonzero(labels):
        r, c = rng.integers(0, SIZE - MARK + 1, size=2)
        images[i, r : r + MARK, c : c + MARK] = 255.0
        corners[i] = r, c
    return images, labels, corners


def mark_mask(corner):
    """[SIZE, SIZE] bool: the mark whose top-left pixel is `corner`."""
    mask = np.zeros((SIZE, SIZE), bool)
    r, c = corner
    mask[r : r + MARK, c : c + MARK] = True
    return mask


def mark_shares(maps, corners):
    """[N]: the share of each map's |mass| that lies on its image's mark, sum_mark |R| / sum |R|."""
    mass = np.abs(np.asarray(maps, np.float64))
    return np.array([m[mark_mask(corner)].sum() / m.sum() for m, corner in zip(mass, corners)])


def train():
    """Rescaling(1/255), conv-relu, max pool, conv-relu, global average pool, softmax: fit to the task (eager Keras)."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(1)
    layers = tf.keras.layers
    init = tf.keras.initializers.GlorotUniform(seed=1)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((SIZE, SIZE, 3)),
            layers.Rescaling(1 / 255, name="rescale"),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1", kernel_initializer=init),
            layers.MaxPooling2D(2, name="pool"),
            layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2", kernel_initializer=init),
            layers.GlobalAveragePooling2D(name="gap"),
            layers.Dense(2, activation="softmax", name="probs", kernel_initializer=init),
        ],
        name="shortcut_cnn",
    )
    images, labels, _ = make_images(1024, seed=0)
    model.compile(tf.keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(images, labels, epochs=15, batch_size=64, shuffle=False, verbose=0)
    return model


def without_rescaling(model):
    """The same trained layers with the Rescaling layer taken out (its scale then goes in the recorded preprocessing)."""
    import tensorflow as tf

    layers = [type(layer).from_config(layer.get_config()) for layer in model.layers[1:]]
    plain = tf.keras.Sequential([tf.keras.Input((SIZE, SIZE, 3)), *layers], name="plain_cnn")
    for copy, layer in zip(layers, model.layers[1:]):
        copy.set_weights(layer.get_weights())
    return plain


def main(directory):
    """Train the model; log it as checkpoint step 1 of run directory/rescaling, and without its Rescaling as directory/plain."""
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tb_xai_plugin import summary

    model = train()
    runs = {"rescaling": (model, {"type": "none"}), "plain": (without_rescaling(model), SCALE)}
    for run, (logged, preprocessing) in runs.items():
        writer = summary.create_file_writer(os.path.join(directory, run))
        with writer.as_default():
            assert summary.checkpoint(logged, step=1, class_names=CLASS_NAMES, preprocessing=preprocessing)
        writer.close()


def log(directory):
    """Run this script in this interpreter (eager, as a user's training script): runs directory/rescaling and directory/plain."""
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), str(directory)], capture_output=True, text=True, timeout=300,
        check=False, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


if __name__ == "__main__":
    main(sys.argv[1])
