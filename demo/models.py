"""Three small classifiers for 28x28x1 inputs that differ the way VGG16, ResNet50 and Xception do.

Each takes images scaled to [0, 1] and ends in Dense(softmax); only stock Keras layers, so the
checkpoints load without running any code, and iNNvestigate's LRP rules cover every layer.
"""

import tensorflow as tf

layers = tf.keras.layers


def _batch_norm(name):
    """Batch normalization whose moving statistics keep up with a few epochs of training (momentum 0.9)."""
    return layers.BatchNormalization(momentum=0.9, name=name)


def plain_cnn(input_shape, num_classes, name="cnn"):
    """VGG-like: stacks of 3x3 convolutions and max pooling, then a dense head."""
    inputs = tf.keras.Input(input_shape)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1a")(inputs)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1b")(x)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2a")(x)
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2b")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="fc")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def _residual_block(x, filters, stride, name):
    """conv-BN-ReLU-conv-BN plus a shortcut (1x1 conv where the shape changes), then ReLU."""
    shortcut = x
    y = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=name + "_conv1")(x)
    y = _batch_norm(name=name + "_bn1")(y)
    y = layers.Activation("relu", name=name + "_relu1")(y)
    y = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=name + "_conv2")(y)
    y = _batch_norm(name=name + "_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, strides=stride, use_bias=False, name=name + "_proj")(x)
        shortcut = _batch_norm(name=name + "_proj_bn")(shortcut)
    y = layers.Add(name=name + "_add")([y, shortcut])
    return layers.Activation("relu", name=name + "_out")(y)


def residual_net(input_shape, num_classes, name="resnet"):
    """ResNet-like: a stem, residual blocks with batch normalization, global average pooling."""
    inputs = tf.keras.Input(input_shape)
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _batch_norm(name="stem_bn")(x)
    x = layers.Activation("relu", name="stem_relu")(x)
    x = _residual_block(x, 16, 1, "block1")
    x = _residual_block(x, 32, 2, "block2")
    x = _residual_block(x, 32, 2, "block3")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def separable_net(input_shape, num_classes, name="sepconv"):
    """Xception-like: a plain stem, then depthwise-separable convolutions with batch normalization."""
    inputs = tf.keras.Input(input_shape)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="stem_conv")(inputs)
    for i, filters in enumerate((32, 64), start=1):
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name="sep%da" % i)(x)
        x = _batch_norm(name="sep%da_bn" % i)(x)
        x = layers.Activation("relu", name="sep%da_relu" % i)(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False, name="sep%db" % i)(x)
        x = _batch_norm(name="sep%db_bn" % i)(x)
        x = layers.Activation("relu", name="sep%db_relu" % i)(x)
        x = layers.MaxPooling2D(name="pool%d" % i)(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return tf.keras.Model(inputs, outputs, name=name)


ARCHITECTURES = {"cnn": plain_cnn, "resnet": residual_net, "sepconv": separable_net}


def build(architecture, input_shape, num_classes, name):
    """A fresh, compiled model of `architecture` (a key of ARCHITECTURES) named `name`."""
    model = ARCHITECTURES[architecture](input_shape, num_classes, name=name)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model
