"""Small Keras 2 models the canonizer rewrites (test_keras2_canonize.py), logged as a Keras 2 user does.

    .venv-innvestigate/bin/python tests/engine/keras2_canonize_models.py DIRECTORY

Runs eager in the Keras 2 stack: logs each model of MODELS as run DIRECTORY/<name> (checkpoint step 1), IMAGES
uint8 images as DIRECTORY/images.npy, and into DIRECTORY/reference.npz Keras 2's own outputs on them:
"<name>" the model's output, "<name>:logits" its last Dense layer's output before the activation (float64
from Keras' features), "<name>:first" the input of its first real layer (after the preprocessing the
canonizer folds), "transfer:Conv1" the output of Conv1 inside its base, computed by Keras from the model as built. stdout: {name: [path, manifest]}.
`run(directory)` does all that from the test process.
"""

import json
import os
import sys

import numpy as np

import keras2_checkpoints

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SIDE = 32
IMAGES = 2
NONE = {"type": "none"}


def from_scratch():
    """Keras's "image classification from scratch", small: augmentation, Rescaling, separable conv, residual add, Dense(1)."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((16, 16, 3))
    x = layers.RandomFlip("horizontal")(inputs)
    x = layers.RandomRotation(0.1)(x)
    x = layers.Rescaling(1.0 / 255, name="rescaling")(x)
    x = layers.Conv2D(8, 3, strides=2, padding="same", name="conv")(x)
    x = layers.BatchNormalization()(x)
    previous = x = layers.Activation("relu")(x)
    x = layers.SeparableConv2D(8, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = layers.add([x, layers.Conv2D(8, 1, strides=2, padding="same")(previous)])
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    return tf.keras.Model(inputs, layers.Dense(1)(x), name="from_scratch"), "conv", ["cat", "dog"]


def transfer():
    """The transfer-learning tutorial, small: preprocess_input ops, a nested MobileNetV2 (alpha 0.35), Dropout, Dense(1)."""
    import tensorflow as tf

    layers = tf.keras.layers
    base = tf.keras.applications.MobileNetV2(input_shape=(SIDE, SIDE, 3), include_top=False, weights=None, alpha=0.35)
    inputs = tf.keras.Input((SIDE, SIDE, 3))
    x = base(tf.keras.applications.mobilenet_v2.preprocess_input(inputs))
    x = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(x))
    return tf.keras.Model(inputs, layers.Dense(1)(x), name="transfer"), base.name + "/Conv1", ["cat", "dog"]


def efficientnet_nested():
    """EfficientNetB0 (its Rescaling and Normalization inside) nested as one layer, 3 classes."""
    import tensorflow as tf

    layers = tf.keras.layers
    base = tf.keras.applications.EfficientNetB0(input_shape=(SIDE, SIDE, 3), include_top=False, weights=None)
    inputs = tf.keras.Input((SIDE, SIDE, 3))
    outputs = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(base(inputs)))
    return tf.keras.Model(inputs, outputs, name="efficientnet_nested"), base.name + "/stem_conv_pad", None


def convnext_block():
    """A ConvNeXt-like block: patchify stem, grouped 7x7 conv (groups == channels), LayerNorm, GELU MLP, residual."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((16, 16, 3))
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = layers.Conv2D(8, 2, strides=2, name="stem")(x)
    h = layers.Conv2D(8, 7, padding="same", groups=8, name="depthwise_conv")(x)
    h = layers.LayerNormalization(epsilon=1e-6)(h)
    h = layers.Dense(16, activation="gelu")(h)
    x = layers.add([x, layers.Dense(8)(h)])
    outputs = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling2D()(x))
    return tf.keras.Model(inputs, outputs, name="convnext_block"), "stem", None


def small_vit():
    """A small vision transformer: Rescaling, patch embedding, two MultiHeadAttention blocks, mean-pooled."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((16, 16, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Reshape((16, 8))(layers.Conv2D(8, 4, strides=4, name="patch_embedding")(x))
    for block in range(2):
        h = layers.LayerNormalization(epsilon=1e-6)(x)
        x = layers.Add()([x, layers.MultiHeadAttention(2, 4, name="attention_%d" % block)(h, h)])
        h = layers.Dense(8)(layers.Dense(16, activation="gelu")(layers.LayerNormalization(epsilon=1e-6)(x)))
        x = layers.Add()([x, h])
    outputs = layers.Dense(3, activation="softmax")(layers.GlobalAveragePooling1D()(x))
    return tf.keras.Model(inputs, outputs, name="small_vit"), "patch_embedding", None


def rescaled_chain():
    """The Keras tutorials' first CNN, Sequential: Rescaling(1/255), Conv2D(relu), MaxPooling2D, Flatten, Dense softmax."""
    import tensorflow as tf

    layers = tf.keras.layers
    model = tf.keras.Sequential([
        tf.keras.Input((16, 16, 3)), layers.Rescaling(1.0 / 255), layers.Conv2D(4, 3, activation="relu", name="conv"),
        layers.MaxPooling2D(), layers.Flatten(), layers.Dense(3, activation="softmax"),
    ], name="rescaled_chain")  # fmt: skip
    return model, "conv", None


def two_readers():
    """The input read twice, scaled (Rescaling -> conv) and raw (conv): one input cannot carry both, nothing is folded."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((16, 16, 3))
    scaled = layers.Conv2D(4, 3, name="conv")(layers.Rescaling(1.0 / 255)(inputs))
    raw = layers.Conv2D(4, 3, name="raw_conv")(layers.Dropout(0.5)(inputs))
    x = layers.GlobalAveragePooling2D()(layers.add([scaled, raw]))
    return tf.keras.Model(inputs, layers.Dense(3, activation="softmax")(x), name="two_readers"), "conv", None


def caffe_style():
    """ResNet50's preprocess_input (channel flip, then the mean per channel) in front of a small CNN: nothing folds."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((16, 16, 3))
    x = layers.Conv2D(4, 3, activation="relu", name="conv")(tf.keras.applications.resnet50.preprocess_input(inputs))
    x = layers.GlobalAveragePooling2D()(x)
    return tf.keras.Model(inputs, layers.Dense(3, activation="softmax")(x), name="caffe_style"), "conv", None


MODELS = {"two_readers": two_readers, "caffe_style": caffe_style, "rescaled_chain": rescaled_chain, "from_scratch": from_scratch, "transfer": transfer, "efficientnet_nested": efficientnet_nested,
          "convnext_block": convnext_block, "small_vit": small_vit}  # fmt: skip


def run(directory):
    """({name: (path, manifest)}, {side: uint8 images}, {key: Keras 2's reference output}) from this script."""
    logged = keras2_checkpoints.logged_by(__file__, directory)
    with np.load(os.path.join(str(directory), "reference.npz")) as npz:
        reference = {key: npz[key] for key in npz.files}
    images = {side: np.load(os.path.join(str(directory), "images_%d.npy" % side)) for side in (16, SIDE)}
    return logged, images, reference


def first_layer_input(model, path):
    """The input of the layer at `path` ("layer" or "base/layer") as Keras computes it: a model up to that input."""
    import tensorflow as tf

    outer, _, inner = path.partition("/")
    if not inner:
        return tf.keras.Model(model.input, model.get_layer(outer).input)
    base = model.get_layer(outer)
    into_base = tf.keras.Model(model.input, base.inbound_nodes[-1].input_tensors)  # its call in the outer model
    return tf.keras.Model(model.input, tf.keras.Model(base.input, base.get_layer(inner).input)(into_base.output))


def calibrate_batch_norm(model, x):
    """Moving statistics of every BatchNormalization set to its input's on x (one training-mode pass, momentum 0)."""
    import tensorflow as tf

    norms = [layer for layer in _all_layers(model) if isinstance(layer, tf.keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)


def _all_layers(model):
    """Every layer of the model, nested models' layers included."""
    for layer in model.layers:
        yield layer
        yield from _all_layers(layer) if hasattr(layer, "layers") else []


def main():
    """Log every model (eager, summary.checkpoint); write the images and Keras 2's reference outputs."""
    sys.path[:0] = [REPO]
    import tensorflow as tf

    from tb_xai_plugin import files, summary

    directory = sys.argv[1]
    rng = np.random.default_rng(0)
    images = {side: rng.integers(0, 256, (IMAGES, side, side, 3)).astype(np.uint8) for side in (16, SIDE)}
    for side, array in images.items():
        np.save(os.path.join(directory, "images_%d.npy" % side), array)
    written, reference = {}, {}
    for name, build in MODELS.items():
        tf.keras.utils.set_random_seed(0)
        model, first, class_names = build()
        x = images[model.input_shape[1]].astype(np.float32)
        calibrate_batch_norm(model, np.concatenate([x, x[:, ::-1]]))
        run = os.path.join(directory, name)
        with summary.create_file_writer(run).as_default():
            assert summary.checkpoint(model, step=1, preprocessing=NONE, class_names=class_names)
        ((path, manifest),) = files.checkpoint_listing(run)
        written[name] = (path, manifest)
        reference[name] = model(x, training=False).numpy()
        dense = model.layers[-1]
        features = tf.keras.Model(model.input, dense.input)(x, training=False).numpy().astype(np.float64)
        reference[name + ":logits"] = features @ dense.kernel.numpy() + dense.bias.numpy()
        reference[name + ":first"] = first_layer_input(model, first)(x, training=False).numpy()
        if name == "transfer":
            base = model.get_layer(first.partition("/")[0])
            conv = tf.keras.Model(base.input, base.get_layer("Conv1").output)
            reference["transfer:Conv1"] = conv(reference[name + ":first"], training=False).numpy()
    np.savez(os.path.join(directory, "reference.npz"), **reference)
    json.dump(written, sys.stdout)


if __name__ == "__main__":
    main()
