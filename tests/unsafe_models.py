"""Models that would run code stored in their file, in every nesting the safety check must see through.

Each Lambda's function appends to a marker file when called: the marker existing proves the stored
code ran. Building a model calls the function once (Keras traces it), so each builder removes the
marker before returning. Works with Keras 2 (tf.keras 2.14) and Keras 3 (tf.keras is keras 3).
"""

import json
import os
import zipfile

import numpy as np
import tensorflow as tf

KERAS_3 = tf.keras.__version__.startswith("3") if hasattr(tf.keras, "__version__") else False
# The file formats each stack saves and the safety check reads.
FORMATS = ("keras", "h5") if KERAS_3 else ("h5", "savedmodel")
INPUT = (28, 28, 1)


def touch(marker):
    """An identity function that appends to `marker` when called (the path is a constant of its code)."""
    return eval("lambda x: (open(%r, 'a').close(), x)[1]" % marker)  # a lambda: Keras stores its bytecode


class Doubling(tf.keras.layers.Layer):
    """A custom layer (a class the safety check does not know)."""

    def call(self, inputs):
        return inputs * 2.0


def _head(x, name="head"):
    """conv(2) -> global average pool -> dense(3, softmax)."""
    x = tf.keras.layers.Conv2D(2, 3, activation="relu", name=name + "_conv")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name=name + "_pool")(x)
    return tf.keras.layers.Dense(3, activation="softmax", name=name + "_dense")(x)


def _lambda(marker):
    """The marker-writing Lambda layer, named 'lam'."""
    return tf.keras.layers.Lambda(touch(marker), name="lam")


def top_sequential(marker):
    """Sequential 'outer': lam -> head layers."""
    return tf.keras.Sequential([
        tf.keras.Input(INPUT), _lambda(marker), tf.keras.layers.Conv2D(2, 3, name="conv"),
        tf.keras.layers.GlobalAveragePooling2D(name="pool"), tf.keras.layers.Dense(3, activation="softmax", name="dense"),
    ], name="outer")  # fmt: skip


def top_functional(marker):
    """Functional 'outer': lam -> head."""
    inputs = tf.keras.Input(INPUT)
    return tf.keras.Model(inputs, _head(_lambda(marker)(inputs)), name="outer")


def _wrap(inner, depth):
    """`inner` wrapped in `depth` Functional models named 'mid1'.. (each calls the one inside)."""
    for level in range(1, depth + 1):
        inputs = tf.keras.Input(INPUT)
        inner = tf.keras.Model(inputs, inner(inputs), name="mid%d" % level)
    return inner


def nested(marker, depth=1):
    """Functional 'outer' calling 'inner' (which holds lam) wrapped in `depth - 1` more models."""
    inputs = tf.keras.Input(INPUT)
    inner = tf.keras.Model(inputs, _lambda(marker)(inputs), name="inner")
    inputs = tf.keras.Input(INPUT)
    return tf.keras.Model(inputs, _head(_wrap(inner, depth - 1)(inputs)), name="outer")


def in_time_distributed(marker):
    """Functional 'outer': TimeDistributed 'td' (over the image rows) of lam -> head."""
    inputs = tf.keras.Input(INPUT)
    x = tf.keras.layers.TimeDistributed(_lambda(marker), name="td")(inputs)
    return tf.keras.Model(inputs, _head(x), name="outer")


def model_in_time_distributed(marker):
    """Functional 'outer': TimeDistributed 'td' of the model 'inner' (a row [28, 1] -> lam -> dense)."""
    row = tf.keras.Input(INPUT[1:])
    inner = tf.keras.Model(row, tf.keras.layers.Dense(1, name="row_dense")(_lambda(marker)(row)), name="inner")
    inputs = tf.keras.Input(INPUT)
    x = tf.keras.layers.TimeDistributed(inner, name="td")(inputs)
    return tf.keras.Model(inputs, _head(x), name="outer")


def in_bidirectional(marker):
    """Functional 'outer': rows -> Bidirectional 'bi' of an LSTM -> dense; a safe model (the h5 edit hides lam in it)."""
    inputs = tf.keras.Input(INPUT)
    x = tf.keras.layers.Reshape((28, 28), name="rows")(inputs)
    x = tf.keras.layers.Bidirectional(tf.keras.layers.LSTM(2, name="lstm"), name="bi")(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax", name="dense")(x), name="outer")


def safe_time_distributed():
    """The in_time_distributed shape with a safe, weightless inner layer (TimeDistributed 'td' of an Activation 'lam')."""
    inputs = tf.keras.Input(INPUT)
    x = tf.keras.layers.TimeDistributed(tf.keras.layers.Activation("relu", name="lam"), name="td")(inputs)
    return tf.keras.Model(inputs, _head(x), name="outer")


def custom(marker=None):
    """Functional 'outer': the custom layer 'doubling' -> head."""
    inputs = tf.keras.Input(INPUT)
    return tf.keras.Model(inputs, _head(Doubling(name="doubling")(inputs)), name="outer")


# builder -> the path (and class) the safety check must name
NESTINGS = {
    "top_sequential": (top_sequential, "lam"),
    "top_functional": (top_functional, "lam"),
    "nested": (nested, "inner/lam"),
    "nested_two_deep": (lambda marker: nested(marker, depth=2), "mid1/inner/lam"),
    "in_time_distributed": (in_time_distributed, "td/lam"),
    "model_in_time_distributed": (model_in_time_distributed, "td/inner/lam"),
}


def build(builder, marker):
    """builder(marker), with the marker its tracing wrote removed."""
    tf.keras.utils.set_random_seed(0)
    model = builder(marker)
    if os.path.exists(marker):
        os.remove(marker)
    return model


def save(model, folder, fmt):
    """Save `model` in `folder` as fmt ("h5", "savedmodel", "keras"): its path."""
    path = os.path.join(str(folder), {"h5": "model.h5", "savedmodel": "savedmodel", "keras": "model.keras"}[fmt])
    if fmt == "savedmodel":
        model.save(path, save_format="tf", include_optimizer=False)
    elif fmt == "h5" and not KERAS_3:
        model.save(path, save_format="h5", include_optimizer=False)
    else:
        model.save(path)
    return path


def edit_config(path, fmt, edit):
    """Rewrite the model config stored in the .h5 or .keras file at `path` with edit(config) (in place)."""
    if fmt == "h5":
        import h5py

        with h5py.File(path, "r+") as f:
            config = json.loads(f.attrs["model_config"])
            edit(config)
            f.attrs["model_config"] = json.dumps(config)
        return
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(entries["config.json"])
    edit(config)
    entries["config.json"] = json.dumps(config).encode("utf-8")
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def top_layer(config, name):
    """The record of the layer `name` among a model config's top-level layers."""
    (found,) = [layer for layer in config["config"]["layers"] if layer["config"]["name"] == name]
    return found


def hide_in_wrapper(path, fmt, record, wrapper="td", key="layer"):
    """Rewrite the model file at `path` so its wrapper `wrapper` holds `record` under `key` (in place)."""
    edit_config(path, fmt, lambda config: top_layer(config, wrapper)["config"].__setitem__(key, record))


def make_custom(path, fmt, layer="conv"):
    """Rewrite the model file at `path` so its layer `layer` becomes the custom class 'Doubling' named 'doubling'."""

    def edit(config):
        record = top_layer(config, layer)
        record.update(class_name="Doubling", module="tests.unsafe_models", registered_name="Custom>Doubling")
        record["config"]["name"] = "doubling"

    edit_config(path, fmt, edit)


def lambda_record(marker):
    """The config record of the marker-writing Lambda 'lam', as a model file stores it."""
    model = build(in_time_distributed, marker)
    return top_layer(json.loads(model.to_json()), "td")["config"]["layer"]


def images(count=4):
    """`count` random 28x28x1 uint8 images."""
    return np.random.default_rng(0).integers(0, 256, (count,) + INPUT, dtype=np.uint8)
