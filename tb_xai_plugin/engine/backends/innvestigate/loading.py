"""The iNNvestigate backend's loading: a checkpoint in its own graph and session, checked against its manifest.

`load_checkpoint(path, manifest, allow_unsafe=False) -> LoadedModel`. The caller maps a run and a
step to `path` inside the logdir; nothing a client sends reaches this function as a path.
Needs eager execution disabled (`graph_mode.enable_graph_mode()`), like iNNvestigate.

`LoadedModel`, what methods compute with (besides checkpoint.ModelBase's manifest, input_shape,
num_classes, layers, cache, preprocess, and its scores / probabilities_and_means forward calls):
    backend         "innvestigate"
    graph, session  its own tf.Graph and tf.compat.v1.Session (never the global ones)
    keras_model     the model as canonize.py rebuilt it (softmax included): its leading preprocessing folded
                    into `folded`, nested models flattened, inference identities dropped; the model as saved
                    where the rebuild does not apply. The file and the manifest are never changed.
    logits_model    the same model with its final softmax / sigmoid stripped (shares the weights); for a
                    binary head (one unit, logit z), two logits [-z, z] (binary_logits_model)
    input           the model's input placeholder; probs: its output probabilities tensor [N, K]
    run(fetches, feed_dict)      session.run inside the graph
    in_graph()                   context for building ops: graph, session and Keras' session
    building()                   in_graph() for building whole Keras models / analyzers fast (below);
                                 yields a list to append the tensors to fetch (see its docstring)
    layer_output(name)           the output tensor of layer `name` (or path "base/layer") of the saved
                                 model, in keras_model's graph; XaiError if unknown
    probs_of(x)                  context: the first run() feeding exactly the array x as the model
                                 input also fetches model.probs, so scores cost no extra forward pass
Build ops only inside `in_graph()` (or `building()`); compute only through `run()`.

Why `building()`: in graph mode, Keras wraps every raw TF op it meets while building a functional
model (iNNvestigate's analyzers are full of them) and evaluates each constant input of such an op
with a session run (keras base_layer_utils._create_keras_history_helper). Every run extends the
session with the grown graph and marks already-run ops again ("Operation ... was changed by setting
attribute after it was run by a session"), and every Keras get_session() re-checks all variables
for initialization: ResNet50's first gradient map took ~4 minutes. `building()` keeps those constants
as graph tensors (Keras' own switch for this, _UNSAFE_GRAPH_OP_LAYER_CREATION), turns Keras'
automatic variable initialization off, and on exit initializes only the variables the block
created that are still uninitialized, in one session run.
"""

import contextlib
import os

import numpy as np

from tb_xai_plugin import model_info, safety
from tb_xai_plugin.engine import checkpoint, local_copy
from tb_xai_plugin.engine.backends.innvestigate import canonize
from tb_xai_plugin.errors import XaiError

FORMATS = ("h5", "savedmodel")


class LoadedModel(checkpoint.ModelBase):
    """A checkpoint loaded in its own graph and session; see the module docstring."""

    backend = "innvestigate"

    def __init__(self, manifest, graph, session, keras_model, logits_model):
        super().__init__(manifest)
        self.graph = graph
        self.session = session
        self.keras_model = keras_model
        self.logits_model = logits_model
        self.input = keras_model.input
        self.probs = _probabilities(keras_model.output, manifest["output_activation"])
        self.outputs_by_path = {}  # canonize.Canonical.outputs of the rebuilt model
        self._ancestors = None

    def adopt(self, canonical):
        """Explain the rebuilt model of a canonize.Canonical: its keras_model, input, probs, folded, outputs."""
        self.keras_model = canonical.keras_model
        self.input = canonical.keras_model.input
        self.probs = _probabilities(canonical.keras_model.output, self.manifest["output_activation"])
        self.folded = None if canonical.folded is None else tuple(np.asarray(a, np.float32) for a in canonical.folded)
        self.outputs_by_path = canonical.outputs
        self._ancestors = None

    @contextlib.contextmanager
    def in_graph(self):
        """Make this model's graph, session and Keras session the defaults, to build ops."""
        with self.graph.as_default(), self.session.as_default(), keras_session(self.session):
            yield self

    @contextlib.contextmanager
    def building(self):
        """in_graph() without per-op session runs; on exit initializes the block's new variables.

        Yields a list: append the tensors the block built to be fetched, and only the new variables
        they read get initialized (iNNvestigate leaves unused copies of every layer's weights).
        """
        import tensorflow as tf

        with self.in_graph(), fast_graph_building():
            before = set(id(v) for v in tf.compat.v1.global_variables())
            fetches = []
            yield fetches
            created = [v for v in tf.compat.v1.global_variables() if id(v) not in before]
            initialize_variables(self.session, variables_read_by(fetches, created) if fetches else created)

    def run(self, fetches, feed_dict=None):
        """session.run(fetches, feed_dict) in this model's graph (see probs_of)."""
        probe = self._probe
        with self.graph.as_default():
            if probe is not None and probe["probs"] is None and feed_dict and feed_dict.get(self.input) is probe["x"]:
                out, probe["probs"] = self.session.run((fetches, self.probs), feed_dict=feed_dict)
                return out
            return self.session.run(fetches, feed_dict=feed_dict)

    def scores(self, x, score):
        """float32 [N, K]: the model's probabilities ("probability") or logits ("logit") on inputs x."""
        return self.run(self.logits_model.outputs[0] if score == "logit" else self.probs, {self.input: x})

    def probabilities_and_means(self, x, layer, neuron=None):
        """(float32 [N, K] probabilities, float32 [N] mean of the layer's output or its channel) in one run."""
        mean = self.cache.get_or_build(("activation_mean", layer, neuron), lambda: self._mean_op(layer, neuron))
        return self.run((self.probs, mean), {self.input: x})

    def layer_means(self, x, layer, neuron=None):
        """float32 [N]: mean of the layer's output per image (of channel `neuron` if given)."""
        return self.probabilities_and_means(x, layer, neuron)[1]

    def _mean_op(self, layer, neuron):
        """Tensor [N]: the mean over all non-batch axes of a layer's output (of one channel if neuron)."""
        import tensorflow as tf

        output = self.layer_output(layer)
        with self.in_graph():
            if neuron is not None:
                output = output[..., int(neuron)]
            return tf.reduce_mean(tf.reshape(output, [tf.shape(output)[0], -1]), axis=1)

    def folded_layer(self, name):
        """Whether layer `name` (or path "base/layer") lies inside the folded preprocessing (an Affine of the input);
        a fold of inference identities alone (augmentation) is x * 1 + 0, which the native backend keeps in the model."""
        if self.folded is None or (np.all(self.folded[0] == 1) and np.all(self.folded[1] == 0)):
            return False
        return isinstance(self.outputs_by_path.get(name), canonize.Affine)

    def layer_output(self, name):
        """The output tensor of layer `name` inside this model (a nested model: its outer call); XaiError if unknown."""
        if self.folded_layer(name):
            raise XaiError(checkpoint.FOLDED_LAYER % name)
        if name in self.outputs_by_path:
            with self.in_graph():
                return canonize.tensor_of(self.outputs_by_path[name], self.input, self.folded)
        layer = model_info.find_nested_layer(self.keras_model, name)  # "outer/inner": a layer inside a nested base
        if layer is None:
            raise XaiError("unknown layer %r; this model has %s" % (name, ", ".join(layer["name"] for layer in self.layers)))
        # layer.output of a nested model (or a layer shared with one) is its own graph's tensor, not its call here.
        calls = [layer.get_output_at(k) for k in range(len(layer.inbound_nodes))] + [layer.output]
        ancestors = self._ancestor_ops()
        for tensor in calls:
            if tensor.op.name in ancestors:
                return tensor
        raise XaiError("layer %r does not feed the model's output" % name)

    def _ancestor_ops(self):
        """Names of every op the model's outputs and logits depend on, found once by walking inputs back."""
        if self._ancestors is None:
            outputs = list(self.keras_model.outputs) + list(self.logits_model.outputs)
            seen, stack = set(), [t.op for t in outputs]
            while stack:
                op = stack.pop()
                if op.name not in seen:
                    seen.add(op.name)
                    stack.extend(t.op for t in op.inputs)
            self._ancestors = frozenset(seen)
        return self._ancestors

    def close(self):
        """Release the session (the graph goes with the last reference)."""
        self.cache.clear()
        self.session.close()


@contextlib.contextmanager
def keras_session(session):
    """Make `session` Keras' session for the block, then restore Keras' previous one (or none)."""
    from keras.src import backend

    previous = getattr(backend._SESSION, "session", None)
    backend._SESSION.session = session
    try:
        yield session
    finally:
        backend._SESSION.session = previous


@contextlib.contextmanager
def fast_graph_building():
    """Keras builds functional graphs without session runs and without auto-initializing variables."""
    from keras.src import backend
    from keras.src.engine import base_layer_utils

    unsafe, manual = base_layer_utils._UNSAFE_GRAPH_OP_LAYER_CREATION, backend._MANUAL_VAR_INIT
    base_layer_utils._UNSAFE_GRAPH_OP_LAYER_CREATION, backend._MANUAL_VAR_INIT = True, True
    try:
        yield
    finally:
        base_layer_utils._UNSAFE_GRAPH_OP_LAYER_CREATION, backend._MANUAL_VAR_INIT = unsafe, manual


def initialize_variables(session, variables):
    """Run the initializers of those `variables` not yet initialized in `session` (two runs at most)."""
    import tensorflow as tf

    if not variables:
        return
    done = session.run([tf.compat.v1.is_variable_initialized(v) for v in variables])
    pending = [v.initializer for v, ok in zip(variables, done) if not ok]
    if pending:
        session.run(pending)


def variables_read_by(fetches, variables):
    """Those of `variables` whose handle some op on the way to `fetches` reads (a walk up the graph)."""
    seen, stack = set(), [getattr(t, "op", t) for t in fetches]
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return [v for v in variables if v.op in seen]


def _probabilities(output, activation):
    """The model's class probabilities: its output, or softmax of it when the output is linear."""
    import tensorflow as tf

    if activation == "linear":
        with output.graph.as_default():
            return tf.nn.softmax(output)
    return output


def load_checkpoint(path, manifest, allow_unsafe=False):
    """Load the .h5 / SavedModel at `path` into a new graph + session, verified against `manifest`."""
    path = local_copy.local_checkpoint(path, manifest)  # a remote (gs://) file: a checked local copy
    checkpoint.check_file(path, manifest, FORMATS, allow_unsafe)
    import tensorflow as tf

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        keras_model = _load_keras(path, graph, session, allow_unsafe)
        with graph.as_default(), session.as_default(), keras_session(session):
            if model_info.weights_checksum(keras_model.get_weights()) != manifest.get("weights_sha256"):
                raise XaiError("weights do not match the manifest (checkpoint %s)" % os.path.basename(path))
            checkpoint.check_matches_manifest(keras_model.input_shape, keras_model.output_shape, manifest)
            reserve_layer_names(keras_model)
            model = LoadedModel(manifest, graph, session, keras_model, None)
            with model.building() as fetches:
                model.adopt(canonize.canonize(keras_model, session))
                model.logits_model = strip_output_activation(model.keras_model)
                if model.head in model_info.BINARY_HEADS:
                    model.logits_model = binary_logits_model(model.keras_model, session)
                    model.probs = tf.nn.sigmoid(model.logits_model.output)  # [1 - p, p] = sigmoid([-z, z])
                fetches.append(model.logits_model.output)
    except BaseException:
        session.close()
        raise
    return model


def _load_keras(path, graph, session, allow_unsafe):
    """tf.keras.models.load_model in `graph`; load errors become XaiError."""
    import tensorflow as tf

    with graph.as_default(), session.as_default(), keras_session(session), fast_graph_building():
        # Inference only: a constant learning phase spares every BatchNormalization / Dropout a tf.cond.
        tf.compat.v1.keras.backend.set_learning_phase(0)
        try:
            keras_model = tf.keras.models.load_model(
                path, compile=False, safe_mode=not allow_unsafe, custom_objects=application_layers()
            )
            initialize_variables(session, tf.compat.v1.global_variables())
            return keras_model
        except (ValueError, OSError, KeyError) as e:
            raise XaiError("checkpoint %s cannot be loaded: %s" % (os.path.basename(path), e)) from e


def application_layers():
    """{class name: class} of the Keras applications' own layers (safety.APPLICATION_LAYERS), which Keras 2 files name without registering."""
    from keras.src.applications import convnext, inception_resnet_v2

    found = {"CustomScaleLayer": inception_resnet_v2.CustomScaleLayer, "LayerScale": convnext.LayerScale,
             "StochasticDepth": convnext.StochasticDepth}
    return {name: cls for name, cls in found.items() if name in safety.APPLICATION_LAYERS}


def reserve_layer_names(keras_model):
    """Advance Keras' per-graph name counters past the loaded layers' names, so new layers never clash."""
    import re

    from keras.src import backend

    uids = backend.get_default_graph_uid_map()
    for layer in list(keras_model.layers) + list(getattr(keras_model, "_input_layers", [])):
        found = re.match(r"^(.*?)(?:_(\d+))?$", layer.name)
        for key in (found.group(1), ("", found.group(1))):  # get_uid's key, unique_object_name's key
            uids[key] = max(uids[key], int(found.group(2) or 0) + 1)


def binary_logits_model(keras_model, session):
    """x -> [-z, z] for a one-unit head of logit z: its Dense re-made with 2 units, kernel [-W, W], bias [-b, b].

    Class 0 is explained through the negated logit; a Dense layer iNNvestigate's analyzers know like any other.
    """
    import numpy as np
    import tensorflow as tf

    dense = model_info.logit_layer(keras_model)
    if dense is None:
        raise XaiError("a binary head's logit must come from a Dense layer; this model ends in %s" % type(keras_model.layers[-1]).__name__)
    doubled = [tf.keras.initializers.Constant(np.concatenate([-w, w], axis=-1)) for w in session.run(dense.weights)]
    config = dict(dense.get_config(), units=2, activation="linear", name=dense.name + "_two_classes", kernel_initializer=doubled[0])
    if len(doubled) > 1:
        config["bias_initializer"] = doubled[1]  # building() initializes the new variables to these values
    outputs = type(dense).from_config(config)(canonize.node_in(keras_model, dense).input_tensors)
    return tf.keras.Model(keras_model.inputs, outputs, name=keras_model.name + "_logits")


def strip_output_activation(keras_model):
    """keras_model without its final softmax / sigmoid (the explained logits); the model if linear."""
    import innvestigate.backend.graph as igraph
    import tensorflow as tf

    last = keras_model.layers[-1]
    if isinstance(last, (tf.keras.layers.Softmax,)) or (
        isinstance(last, tf.keras.layers.Activation) and model_info.output_activation(keras_model) in ("softmax", "sigmoid")
    ):
        return tf.keras.Model(keras_model.inputs, canonize.node_in(keras_model, last).input_tensors, name=keras_model.name + "_logits")
    activation = model_info.output_activation(keras_model)
    if activation in ("softmax", "sigmoid"):
        outputs = igraph.pre_output_tensors(keras_model.outputs, activation=activation)
        return tf.keras.Model(keras_model.inputs, outputs, name=keras_model.name + "_logits")
    return keras_model
