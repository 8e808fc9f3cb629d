"""Keras 2 checkpoints of architectures users logged with the Keras 2 stack, and Keras 2's predictions on them.

    .venv-innvestigate/bin/python tests/engine/keras2_checkpoints.py DIRECTORY

Runs in the Keras 2 stack (TensorFlow 2.14, Keras 2.14), eager as a user's training script: logs each model of
MODELS as run DIRECTORY/<name>, checkpoint step 1 (.h5 and manifest, by tb_xai_plugin.summary.checkpoint), IMAGES
uint8 images as DIRECTORY/images.npy, and Keras 2's probabilities on them as DIRECTORY/predictions.npz by name.
stdout: {name: [path, manifest]}.
`run(directory)` does all that from the test process (any stack).
"""

import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYTHON = os.path.join(REPO, ".venv-innvestigate", "bin", "python")
SIZE = 32
IMAGES = 2
CLASSES = 3
SCALE = {"type": "scale", "scale": 1 / 255, "offset": 0}  # for models without their own input scaling


def separable():
    """SeparableConv2D, DepthwiseConv2D, BatchNormalization, Dropout in a Sequential model."""
    import tensorflow as tf

    layers = tf.keras.layers
    return tf.keras.Sequential([
        layers.Input((SIZE, SIZE, 3)), layers.SeparableConv2D(4, 3, name="sep"), layers.DepthwiseConv2D(3, name="dw"),
        layers.BatchNormalization(name="bn"), layers.ReLU(name="relu"), layers.Dropout(0.2, name="drop"),
        layers.Flatten(name="flatten"), layers.Dense(CLASSES, activation="softmax", name="dense"),
    ], name="separable")  # fmt: skip


def application(app):
    """Keras application `app` (weights=None) as the whole model, with a 3-class top."""
    import tensorflow as tf

    return getattr(tf.keras.applications, app)(weights=None, input_shape=(SIZE, SIZE, 3), classes=CLASSES)


def nested(app, preprocess=None):
    """Keras application `app` (no top) nested after Rescaling to [-1, 1] or `preprocess`.preprocess_input."""
    import tensorflow as tf

    layers = tf.keras.layers
    x = layers.Input((SIZE, SIZE, 3))
    if preprocess is None:
        y = layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(x)
    else:
        y = getattr(tf.keras.applications, preprocess).preprocess_input(x)
    base = getattr(tf.keras.applications, app)(weights=None, include_top=False, input_shape=(SIZE, SIZE, 3))
    y = layers.GlobalAveragePooling2D(name="pool")(base(y))
    y = layers.Dropout(0.2, name="drop")(y)
    return tf.keras.Model(x, layers.Dense(CLASSES, activation="softmax", name="dense")(y), name=app + "_nested")


def shared_sequential():
    """A Sequential model (built from an Input) called twice, then one without Input: Keras 2's node numbers."""
    import tensorflow as tf

    layers = tf.keras.layers
    inner = tf.keras.Sequential([
        layers.Input((SIZE, SIZE, 3)), layers.Conv2D(4, 3, name="conv"), layers.BatchNormalization(name="bn"),
        layers.ReLU(name="relu"),
    ], name="inner")  # fmt: skip
    head = tf.keras.Sequential([layers.Conv2D(2, 3, name="conv"), layers.Flatten(name="flatten")], name="head")
    x = layers.Input((SIZE, SIZE, 3))
    y = head(layers.Add(name="add")([inner(x), inner(x)]))
    return tf.keras.Model(x, layers.Dense(CLASSES, activation="softmax", name="dense")(y), name="shared")


# name -> (builder, its kwargs, manifest preprocessing)
MODELS = {
    "separable": (separable, {}, SCALE),
    "shared_sequential": (shared_sequential, {}, SCALE),
    "mobilenet_v2": (application, {"app": "MobileNetV2"}, SCALE),
    "mobilenet_v2_nested": (nested, {"app": "MobileNetV2"}, None),
    "mobilenet_v2_tfop": (nested, {"app": "MobileNetV2", "preprocess": "mobilenet_v2"}, None),
    "densenet121": (application, {"app": "DenseNet121"}, SCALE),
    "efficientnet_b0_nested": (nested, {"app": "EfficientNetB0"}, None),
    "resnet50_nested": (nested, {"app": "ResNet50"}, None),
    "resnet50_caffe": (nested, {"app": "ResNet50", "preprocess": "resnet50"}, None),
}


def run(directory):
    """({name: (path, manifest)}, uint8 images, {name: Keras 2 probabilities}) from this script in the Keras 2 stack."""
    logged = logged_by(__file__, directory)
    with np.load(os.path.join(str(directory), "predictions.npz")) as npz:
        predictions = {name: npz[name] for name in npz.files}
    images = np.load(os.path.join(str(directory), "images.npy"))
    return logged, images, predictions


def logged_by(script, directory):
    """{name: (path, manifest)} that `script DIRECTORY` logs and prints as JSON, run in the Keras 2 stack."""
    done = subprocess.run(
        [PYTHON, os.path.abspath(script), str(directory)], capture_output=True, text=True, cwd=REPO,
        timeout=600, check=False, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {name: tuple(pair) for name, pair in json.loads(done.stdout).items()}


def randomize_batch_norm(model, rng):
    """Give every BatchNormalization (nested ones too) non-trivial gamma, beta, moving mean and variance."""
    import tensorflow as tf

    pairs = []
    for layer in _all_layers(model):
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, variance = layer.weights
            shape = tuple(gamma.shape)
            pairs += [(gamma, rng.uniform(0.5, 1.5, shape)), (beta, rng.normal(0, 0.1, shape)),
                      (mean, rng.normal(0, 0.1, shape)), (variance, rng.uniform(0.5, 1.5, shape))]  # fmt: skip
    tf.keras.backend.batch_set_value(pairs)


def _all_layers(model):
    """Every layer of the model, nested models' layers included."""
    for layer in model.layers:
        yield from _all_layers(layer) if hasattr(layer, "layers") else [layer]


def main():
    """Log every model as a Keras 2 user does (eager, summary.checkpoint); write the images, Keras 2's probabilities."""
    sys.path[:0] = [REPO]
    import tensorflow as tf

    from tb_xai_plugin import files, summary
    from tb_xai_plugin.engine import checkpoint

    directory = sys.argv[1]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (IMAGES, SIZE, SIZE, 3)).astype(np.uint8)
    np.save(os.path.join(directory, "images.npy"), images)
    written, predictions = {}, {}
    for name, (build, kwargs, preprocessing) in MODELS.items():
        tf.keras.utils.set_random_seed(0)
        model = build(**kwargs)
        randomize_batch_norm(model, rng)
        run = os.path.join(directory, name)
        with summary.create_file_writer(run).as_default():
            assert summary.checkpoint(model, step=1, preprocessing=preprocessing)
        ((path, manifest),) = files.checkpoint_listing(run)
        written[name] = (path, manifest)
        x = checkpoint.preprocess_array(images.astype(np.float32), preprocessing or {"type": "none"})
        predictions[name] = model(x, training=False).numpy()
    np.savez(os.path.join(directory, "predictions.npz"), **predictions)
    json.dump(written, sys.stdout)


if __name__ == "__main__":
    main()
