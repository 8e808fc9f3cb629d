"""Load a checkpoint with Keras 3 (eager stays on), checked against its manifest: `NativeModel`.

`load_checkpoint(path, manifest, allow_unsafe=False) -> NativeModel`. Reads `.keras` files (safe_mode
unless allow_unsafe) and Keras 2 `.h5` files (Keras 3's legacy loader); the safety check runs first,
then the weights checksum and the input / output shapes are compared with the manifest.

NativeModel (besides checkpoint.ModelBase's manifest, input_shape, num_classes, layers, cache, preprocess, folded):
    saved_model       the model as saved (softmax included)
    keras_model       the model every method explains: saved_model from its first real layer, its leading
                      preprocessing (Rescaling, Normalization, x / 127.5 - 1 ops, inside a nested base too)
                      folded into `folded`, which preprocess applies (native/folding.py); the same layer
                      objects; saved_model itself when there is nothing to fold
    logits_model      a Functional model without the final softmax / sigmoid (the model itself if linear):
                      the last layer re-made with a linear activation and the same weight values; for a
                      binary head (one unit, logit z), two logits [-z, z] (binary_logits_model)
    scores(x, score), probabilities(x), probabilities_and_means(x, layer, neuron), layer_means(x, layer, neuron)
    probabilities_from_logits(logits)   TF op: the model's probabilities from its logits (inside tf.functions)
    probs_of(x) / offer_probs(x, probs) a method's own forward pass hands the batch's probabilities to the
                                dispatcher, which then needs no extra forward pass for the scores
    function(key, build)        a tf.function built once per key and kept in cache
    layer_and_logits(layer)     a Functional model x -> (layer's output in this model, logits)
"""

import contextlib
import os

import numpy as np

from tb_xai_plugin import keras2_config, model_info
from tb_xai_plugin.engine import backends, checkpoint, local_copy
from tb_xai_plugin.engine.backends.native import folding
from tb_xai_plugin.errors import XaiError

FORMATS = ("keras", "h5")
STRIPPED = ("softmax", "sigmoid")
RANDOM_DRAWS = ("uniform", "normal", "truncated_normal")  # what keras.initializers draw from (keras.src.backend.random)


class NativeModel(checkpoint.ModelBase):
    """A checkpoint loaded by Keras 3; see the module docstring."""

    backend = "native"

    def __init__(self, manifest, keras_model):
        super().__init__(manifest)
        self.saved_model = keras_model
        self.keras_model, self.folded = folding.fold(keras_model)
        self.logits_model = strip_output_activation(self.keras_model)
        if self.head in model_info.BINARY_HEADS:
            self.logits_model = binary_logits_model(self.keras_model)

    def folded_layer(self, name):
        """Whether layer `name` (or path "base/layer") is in the saved model but folded out of keras_model."""
        from tb_xai_plugin.keras2_config import keras3_name

        if self.folded is None or model_info.find_nested_layer(self.keras_model, name, keras3_name) is not None:
            return False
        return model_info.find_nested_layer(self.saved_model, name, keras3_name) is not None

    def probabilities_from_logits(self, logits):
        """TF op [N, K]: sigmoid of each logit for a binary or multi-label head, else their softmax (a linear output's too)."""
        import tensorflow as tf

        return tf.nn.sigmoid(logits) if self.head in model_info.SIGMOID_HEADS else tf.nn.softmax(logits)

    def offer_probs(self, x, probs):
        """Record probs [N, K] of the inputs x if x is the batch probs_of waits for (no copy, no extra pass)."""
        probe = self._probe
        if probe is not None and probe["probs"] is None and x is probe["x"]:
            probe["probs"] = np.asarray(probs, np.float32)

    def function(self, key, build):
        """The tf.function build() returns, built on first use and cached under ("fn",) + key."""
        return self.cache.get_or_build(("fn",) + tuple(key), build)

    def input_spec(self):
        """tf.TensorSpec of a batch of model inputs: float32 [None, H, W, C] (one trace for every batch size)."""
        import tensorflow as tf

        return tf.TensorSpec((None,) + self.input_shape, tf.float32)

    def scores(self, x, score):
        """float32 [N, K]: the model's probabilities ("probability") or logits ("logit") on inputs x."""
        fn = self.function(("scores", score), lambda: self._scores_function(score))
        return fn(np.asarray(x, np.float32)).numpy()

    def _scores_function(self, score):
        """tf.function x -> logits, or x -> probabilities (softmax of a linear output)."""
        import tensorflow as tf

        activation = self.manifest.get("output_activation")

        def scores(x):
            if score == "logit":
                return self.logits_model(x, training=False)
            if self.head in model_info.BINARY_HEADS:  # [1 - p, p] = sigmoid([-z, z])
                return tf.nn.sigmoid(self.logits_model(x, training=False))
            out = self.keras_model(x, training=False)
            return tf.nn.softmax(out) if activation == "linear" else out

        return tf.function(scores, input_signature=[self.input_spec()])

    def layer_and_logits(self, layer):
        """A Functional model x -> [the layer's output where this model calls it, logits]; XaiError if unknown."""
        return self.cache.get_or_build(("layer_and_logits", layer), lambda: _layer_and_logits(self, layer))

    def probabilities_and_means(self, x, layer, neuron=None):
        """(float32 [N, K] probabilities, float32 [N] mean of the layer's output or its channel) in one pass."""
        fn = self.function(("probs_and_mean", layer, neuron), lambda: self._means_function(layer, neuron))
        probs, means = fn(np.asarray(x, np.float32))
        return probs.numpy(), means.numpy()

    def layer_means(self, x, layer, neuron=None):
        """float32 [N]: mean of the layer's output per image (of channel `neuron` if given)."""
        return self.probabilities_and_means(x, layer, neuron)[1]

    def _means_function(self, layer, neuron):
        """tf.function x -> (probabilities, mean over non-batch axes of the layer's output / channel)."""
        import tensorflow as tf

        both = self.layer_and_logits(layer)

        def run(x):
            acts, logits = both(x, training=False)
            if neuron is not None:
                acts = acts[..., neuron]
            probs = self.probabilities_from_logits(logits)
            return probs, tf.reduce_mean(tf.reshape(acts, [tf.shape(acts)[0], -1]), axis=1)

        return tf.function(run, input_signature=[self.input_spec()])

    def close(self):
        """Drop the compiled functions (the model goes with the last reference)."""
        self.cache.clear()


def load_checkpoint(path, manifest, allow_unsafe=False):
    """The `.keras` / Keras 2 `.h5` file at `path` loaded by Keras 3 and verified against `manifest`."""
    path = local_copy.local_checkpoint(path, manifest)  # a remote (gs://) file: a checked local copy
    fmt = checkpoint.check_file(path, manifest, FORMATS, allow_unsafe)
    keras_model = _load_keras(path, fmt, allow_unsafe)
    if not weights_match(keras_model, manifest):
        raise XaiError("weights do not match the manifest (checkpoint %s)" % os.path.basename(path))
    checkpoint.check_matches_manifest(keras_model.input_shape, keras_model.output_shape, manifest)
    return NativeModel(manifest, keras_model)


def _load_keras(path, fmt, allow_unsafe):
    """keras.saving.load_model without compiling; load errors become XaiError."""
    import keras

    try:
        with zero_initializers():
            if fmt == "h5":  # a Keras 2 config is translated first (tb_xai_plugin.keras2_config)
                return keras2_config.load_h5(path, allow_unsafe)
            return keras.saving.load_model(path, compile=False, safe_mode=not allow_unsafe)
    except (ValueError, OSError, KeyError, TypeError) as e:
        raise XaiError("checkpoint %s cannot be loaded: %s" % (os.path.basename(path), e)) from e


@contextlib.contextmanager
def zero_initializers():
    """Within: Keras's random initializers draw zeros (the file's weights overwrite them; the checksum checks they did).

    Building a model runs every layer's initializer before the loader sets the saved weights: VGG16's
    138M random draws cost about half of its load. Process-wide while it lasts: loads run one at a time.
    """
    import tensorflow as tf
    from keras.src import backend

    def zeros(shape, *args, dtype=None, **kwargs):
        return tf.zeros(shape, dtype=dtype or backend.floatx())

    saved = {name: getattr(backend.random, name) for name in RANDOM_DRAWS}
    for name in RANDOM_DRAWS:
        setattr(backend.random, name, zeros)
    try:
        yield
    finally:
        for name, draw in saved.items():
            setattr(backend.random, name, draw)


def weights_match(keras_model, manifest):
    """Whether the weights checksum matches the manifest's, in the writer's order first (one hash of the weights when it does)."""
    orders = (keras3_order, keras2_order) if backends.keras_major(manifest) >= 3 else (keras2_order, keras3_order)
    return any(model_info.weights_checksum(order(keras_model)) == manifest.get("weights_sha256") for order in orders)


def keras3_order(keras_model):
    """The weight arrays in Keras 3's order (layer by layer)."""
    return keras_model.get_weights()


def keras2_order(keras_model):
    """The weight arrays in Keras 2's order (trainable first, then non-trainable)."""
    return [np.asarray(w) for w in keras_model.trainable_weights + keras_model.non_trainable_weights]


def strip_output_activation(keras_model):
    """keras_model without its final softmax / sigmoid (the explained logits); the model itself if linear."""
    import keras

    last = keras_model.layers[-1]
    activation = getattr(getattr(last, "activation", None), "__name__", None)
    if type(last).__name__ == "Softmax" or (type(last).__name__ == "Activation" and activation in STRIPPED):
        return keras.Model(keras_model.inputs, called_input(keras_model, last), name=keras_model.name + "_logits")
    if activation not in STRIPPED:
        return keras_model
    linear = type(last).from_config(dict(last.get_config(), activation="linear", name=last.name + "_logits"))
    outputs = linear(called_input(keras_model, last))
    linear.set_weights(last.get_weights())
    return keras.Model(keras_model.inputs, outputs, name=keras_model.name + "_logits")


def binary_logits_model(keras_model):
    """x -> [-z, z] for a one-unit head of logit z: its Dense re-made with 2 units, kernel [-W, W], bias [-b, b].

    Class 0 (the negative class) is explained through the negated logit; a Dense layer like any other,
    so every method (LRP's rules included) explains it as it explains the positive class.
    """
    import keras

    dense = model_info.logit_layer(keras_model)
    if dense is None:
        raise XaiError("a binary head's logit must come from a Dense layer; this model ends in %s" % type(keras_model.layers[-1]).__name__)
    config = dict(dense.get_config(), units=2, activation="linear", name=dense.name + "_two_classes")
    doubled = type(dense).from_config(config)
    outputs = doubled(called_input(keras_model, dense))
    weights = dense.get_weights()
    doubled.set_weights([np.concatenate([-w, w], axis=-1) for w in weights])
    return keras.Model(keras_model.inputs, outputs, name=keras_model.name + "_logits")


def called_input(keras_model, layer):
    """The input tensor of the call of `layer` that keras_model's output comes from (a folded model re-calls its layers)."""
    upstream = _upstream_tensors(keras_model.outputs[0])
    for node in getattr(layer, "_inbound_nodes", []):
        if any(id(tensor) in upstream for tensor in node.output_tensors):
            return node.input_tensors[0]
    return layer.input


def _layer_and_logits(model, name):
    """keras.Model(inputs, [output of layer `name` on the way to the logits, logits])."""
    import keras

    from tb_xai_plugin.keras2_config import keras3_name

    known = {layer.name: layer for layer in model.keras_model.layers}
    # The manifest of a Keras 2 checkpoint names layers as Keras 2 did; its Keras 3 translation renamed "a/b" to "a_b".
    layer = known.get(name) or known.get(keras3_name(name))
    if layer is None:
        inner = model_info.find_nested_layer(model.keras_model, name, keras3_name)
        if inner is not None:
            return _inner_layer_and_logits(model, inner, name)
        if model.folded_layer(name):
            raise XaiError(checkpoint.FOLDED_LAYER % name)
        raise XaiError("unknown layer %r; this model has %s" % (name, ", ".join(e["name"] for e in model.layers)))
    logits = model.logits_model.outputs[0]
    upstream = _upstream_tensors(logits)
    # A nested model (or a shared layer, or a rebuilt Sequential) has several calls: take the one the logits read.
    for node in getattr(layer, "_inbound_nodes", []):
        for tensor in node.output_tensors:
            if id(tensor) in upstream:
                return keras.Model(model.keras_model.inputs, [tensor, logits])
    raise XaiError("layer %r does not feed the model's output" % name)


def _upstream_tensors(tensor):
    """ids of every Keras tensor the symbolic `tensor` is computed from, itself included (a walk up the nodes)."""
    seen, stack = set(), [tensor]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        history = getattr(current, "_keras_history", None)
        if history is None:
            continue
        operation, node_index = history[0], history[1]
        nodes = getattr(operation, "_inbound_nodes", [])
        if node_index < len(nodes):
            stack.extend(nodes[node_index].input_tensors)
    return seen


def _inner_layer_and_logits(model, layer, name):
    """x -> (output of `layer` inside a nested base where the logits read it, logits), through the flattened walk."""
    from tb_xai_plugin.engine.backends.native.walk import Walk

    walk = Walk(model.logits_model)
    calls = [step for step in walk.steps if step.layer is layer]  # a split layer's activation half comes last
    if not calls:
        raise XaiError("layer %r does not feed the model's output" % name)
    key, logits_key = calls[-1].outputs[0], walk.outputs[0]

    def both(x, training=False):
        values = walk.forward(x)
        return values[key], values[logits_key]

    return both
