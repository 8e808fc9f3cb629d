"""Small models built the same way by Keras 2 (tf.keras 2.14) and Keras 3, for backend parity tests."""

import numpy as np


def weighted(model, seed, bias_scale=0.3):
    """`model` with every weight redrawn from N(0, 1/fan-in) (biases N(0, bias_scale)), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = layer.get_weights()
        if type(layer).__name__ == "BatchNormalization":  # gamma, beta, moving mean, moving variance
            layer.set_weights([rng.uniform(0.5, 1.5, w.shape) if i in (0, 3) else rng.normal(0, 0.3, w.shape) for i, w in enumerate(weights)])
        elif weights:
            kernel = weights[0]
            fan_in = int(np.prod(kernel.shape[:-1]))
            new = [rng.normal(0, 1 / np.sqrt(fan_in), kernel.shape)] + [rng.normal(0, bias_scale, w.shape) for w in weights[1:]]
            layer.set_weights(new)
    return model


def mixed_net(seed=0):
    """conv-BN-relu, max-pool, conv tanh / sigmoid branches added, average pool, dense ELU, dense softmax (10x10x2)."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input((10, 10, 2))
    h = layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    h = layers.BatchNormalization(name="bn1")(h)
    h = layers.Activation("relu", name="relu1")(h)
    h = layers.MaxPooling2D(2, name="pool1")(h)
    a = layers.Conv2D(3, 3, padding="same", activation="tanh", name="conv_tanh")(h)
    b = layers.Conv2D(3, 1, activation="sigmoid", name="conv_sigmoid")(h)
    h = layers.Add(name="add")([a, b])
    h = layers.AveragePooling2D(2, name="avg")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(6, activation="elu", name="dense_elu")(h)
    outputs = layers.Dense(3, activation="softmax", name="logits")(h)
    return weighted(tf.keras.Model(inputs, outputs, name="mixed_net"), seed)


def chain_cnn(seed=0, input_shape=(16, 16, 3), classes=4):
    """conv-relu, max-pool, conv-relu, flatten, dense-relu, dense softmax: a chain, as patterns need."""
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input(input_shape)
    h = layers.Conv2D(6, 3, activation="relu", padding="same", name="conv1")(inputs)
    h = layers.MaxPooling2D(2, name="pool1")(h)
    h = layers.Conv2D(8, 3, activation="relu", padding="same", name="conv2")(h)
    h = layers.Flatten(name="flatten")(h)
    h = layers.Dense(16, activation="relu", name="dense1")(h)
    outputs = layers.Dense(classes, activation="softmax", name="logits")(h)
    return weighted(tf.keras.Model(inputs, outputs, name="chain_cnn"), seed)
