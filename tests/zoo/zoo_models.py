"""The models people train, as tutorials and keras.applications build them (weights=None, small inputs).

Each builder returns (model, preprocessing, class_names) for summary.checkpoint; the same code builds
them in both stacks (tf.keras: Keras 2.14 or Keras 3). Binary heads are Dense(1) as the tutorials
write them (head kinds: docs/heads.md). `build` calibrates the head (calibrate_head) as training would.
"""

import numpy as np
import tensorflow as tf

from tb_xai_plugin.engine import checkpoint

layers = tf.keras.layers
SIDE = 32  # every model here takes 32x32x3 images (keras.applications allow it with weights=None)
NONE = {"type": "none"}
UNIT = {"type": "scale", "scale": 1 / 255.0, "offset": 0.0}


def _input():
    """A 32x32x3 image input."""
    return tf.keras.Input((SIDE, SIDE, 3))


def transfer_learning():
    """The TF transfer-learning tutorial: MobileNetV2 base (include_top=False), preprocess_input inside, Dropout, Dense(1)."""
    base = tf.keras.applications.MobileNetV2(input_shape=(SIDE, SIDE, 3), include_top=False, weights=None, alpha=0.35)
    inputs = _input()
    x = tf.keras.applications.mobilenet_v2.preprocess_input(inputs)
    x = base(x)  # the tutorial's training=False only matters while training; calibrate_batch_norm needs the call open
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(1)(x)
    return tf.keras.Model(inputs, outputs, name="transfer_learning"), NONE, ["cat", "dog"]


def from_scratch():
    """Keras's "image classification from scratch": augmentation, Rescaling, separable convs, residual adds, Dense(1)."""
    inputs = _input()
    x = layers.RandomFlip("horizontal")(inputs)
    x = layers.RandomRotation(0.1)(x)
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    previous = x
    for size in (32, 64):
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same")(previous)
        x = layers.add([x, residual])
        previous = x
    x = layers.SeparableConv2D(64, 3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(1, activation=None)(x)
    return tf.keras.Model(inputs, outputs, name="from_scratch"), NONE, ["cat", "dog"]


def cifar_cnn():
    """The TF CIFAR-10 tutorial CNN (three convs, max pooling, Dense), with a softmax over 10 classes."""
    model = tf.keras.Sequential(
        [
            _input(),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.MaxPooling2D(),
            layers.Conv2D(64, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dense(10, activation="softmax"),
        ],
        name="cifar_cnn",
    )
    return model, UNIT, None


def multilabel():
    """A small CNN with a multi-label head: 5 independent sigmoid units."""
    inputs = _input()
    x = layers.Conv2D(16, 3, activation="relu", padding="same")(inputs)
    x = layers.MaxPooling2D()(x)
    x = layers.Conv2D(32, 3, activation="relu", padding="same")(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(5, activation="sigmoid")(x)
    return tf.keras.Model(inputs, outputs, name="multilabel"), UNIT, None


def _application_head(base, name, classes=4):
    """A keras.applications base (include_top=False) nested as one layer, pooled, with a softmax head."""
    inputs = _input()
    x = base(inputs)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(classes, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def efficientnet_nested():
    """EfficientNetB0 (its Rescaling and Normalization inside) nested as one layer, 4 classes."""
    base = tf.keras.applications.EfficientNetB0(input_shape=(SIDE, SIDE, 3), include_top=False, weights=None)
    return _application_head(base, "efficientnet_nested"), NONE, None


def _application(constructor, module, **kwargs):
    """A whole keras.applications model with its own top (4 classes, softmax), its preprocess_input recorded."""
    model = constructor(input_shape=(SIDE, SIDE, 3), weights=None, classes=4, **kwargs)
    return model, {"type": "keras_app", "module": module}, None


def resnet50():
    """keras.applications.ResNet50, whole, 4 classes, its caffe-style preprocess_input recorded."""
    return _application(tf.keras.applications.ResNet50, "resnet50")


def densenet121():
    """keras.applications.DenseNet121, whole, 4 classes, torch-style preprocess_input recorded."""
    return _application(tf.keras.applications.DenseNet121, "densenet")


def mobilenet_v2():
    """keras.applications.MobileNetV2 (alpha 0.35), whole, 4 classes, preprocess_input recorded."""
    return _application(tf.keras.applications.MobileNetV2, "mobilenet_v2", alpha=0.35)


def convnext_tiny():
    """keras.applications.ConvNeXtTiny (LayerNormalization, GELU, LayerScale; its normalization inside), 4 classes."""
    model = tf.keras.applications.ConvNeXtTiny(input_shape=(SIDE, SIDE, 3), weights=None, classes=4)
    return model, NONE, None


def small_vit(patch=8, width=32, heads=2):
    """A small vision transformer: patch embedding, two pre-norm blocks (MultiHeadAttention, GELU MLP), mean-pooled."""
    inputs = _input()
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(width, patch, strides=patch, name="patch_embedding")(x)
    x = layers.Reshape(((SIDE // patch) ** 2, width))(x)
    for block in range(2):
        h = layers.LayerNormalization(epsilon=1e-6)(x)
        h = layers.MultiHeadAttention(heads, width // heads, name="attention_%d" % block)(h, h)
        x = layers.Add()([x, h])
        h = layers.LayerNormalization(epsilon=1e-6)(x)
        h = layers.Dense(2 * width, activation="gelu")(h)
        h = layers.Dense(width)(h)
        x = layers.Add()([x, h])
    x = layers.LayerNormalization(epsilon=1e-6)(x)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(4, activation="softmax")(x)
    return tf.keras.Model(inputs, outputs, name="small_vit"), NONE, None


ZOO = {
    "transfer_learning": transfer_learning,
    "from_scratch": from_scratch,
    "cifar_cnn": cifar_cnn,
    "multilabel": multilabel,
    "efficientnet_nested": efficientnet_nested,
    "resnet50": resnet50,
    "densenet121": densenet121,
    "mobilenet_v2": mobilenet_v2,
    "convnext_tiny": convnext_tiny,
    "small_vit": small_vit,
}


def build(name, images):
    """ZOO[name]() calibrated (batch norm on 64 random images, then the head on `images`): (model, preprocessing, class_names)."""
    model, preprocessing, class_names = ZOO[name]()
    many = np.random.default_rng(1).integers(0, 256, size=(64, SIDE, SIDE, 3)).astype(np.float32)
    calibrate_batch_norm(model, checkpoint.preprocess_array(many, preprocessing))
    calibrate_head(model, checkpoint.preprocess_array(np.asarray(images, np.float32), preprocessing))
    return model, preprocessing, class_names


def calibrate_batch_norm(model, x):
    """Set every BatchNormalization's moving mean and variance to its input's statistics on x, as training leaves them.

    With weights=None the moving statistics are 0 and 1 whatever the activations: deep nets (MobileNetV2,
    EfficientNet) then shrink their activations layer after layer to ~1e-9, where LRP-epsilon absorbs everything.
    One forward pass in training mode with momentum 0 stores the batch statistics.
    """
    norms = [layer for layer in _all_layers(model) if type(layer).__name__ == "BatchNormalization"]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum


def _all_layers(model):
    """Every layer of model, nested models' layers included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def calibrate_head(model, x, spread=2.0, centre=1.0):
    """Rescale the last Dense layer so its logits z on x have std `spread` and mean `centre`: z' = a z + c.

    A random (weights=None) deep net's logits can be huge, saturating softmax and sigmoid in float32 (every
    perturbation then scores 1.0: a constant map), or all negative (no label present); a trained head's are not.
    """
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    features = tf.keras.Model(model.inputs, dense.input)(x, training=False).numpy()
    logits = features @ kernel + bias
    scale = spread / max(float(logits.std()), 1e-6)
    shift = centre - scale * float(logits.mean())
    dense.set_weights([kernel * scale, bias * scale + shift])
