"""The one model-safety check: which saved models may be loaded (or logged) without running their code.

    check_config(config, allow_unsafe=False)     a Keras model config (a dict) -> unsafe layer paths
    check_file(path, fmt, allow_unsafe=False)    the same, read from an "h5" / "savedmodel" / "keras" file
    check_model(model, allow_unsafe=False)       the same, for a Keras model in memory (at log time)

Every object record of the config (a dict with a "class_name"), at every depth, must be of a class on
an allowlist: LAYER_CLASSES where Keras builds a layer (a model's "layers", a wrapper's "layer",
"forward_layer" and "backward_layer"), SUBOBJECT_CLASSES elsewhere (initializers, regularizers,
constraints, dtype policies, Keras 3's tensor records). A layer whose config holds code (CODE_CLASSES,
a Keras 2 TFOpLambda calling a TensorFlow function outside TF_OPS, Keras 3's "__lambda__") is refused
unless `allow_unsafe`; a class outside the allowlist is a custom object and is refused always (its code
is not in the file, and Keras could not rebuild it without it). Keras 3 records also name a "module":
it must be Keras' own, so a custom class cannot borrow a built-in's name. Nothing is built or run:
files are read with h5py, zipfile and the SavedModel metadata protobuf (every node of it, not only the
root; a compiled model's metric nodes must be Keras' built-in metrics). XaiError names the layer by its
path of names below the outermost model (e.g. "td/inner/lam") and its class.
"""

import json
import os
import zipfile

from tb_xai_plugin.errors import XaiError

MODEL_CLASSES = frozenset({"Functional", "Model", "Sequential"})
# Classes whose config lists other layers' records under "layers" (Keras 3's augmentation Pipeline too).
LAYER_LIST_CLASSES = MODEL_CLASSES | {"Pipeline"}
# Config keys under which a layer's config holds other layers' records (wrappers: TimeDistributed,
# Bidirectional, SpectralNormalization).
NESTED_LAYER_KEYS = ("layer", "forward_layer", "backward_layer")
# Layers whose config holds Python code: Keras rebuilds them by running it.
CODE_CLASSES = frozenset({"Lambda"})
# Keras 2 layers calling a TensorFlow function named in the config (no bytecode; see docs/reliability.md).
TF_OP_CLASSES = frozenset({"TFOpLambda", "SlicingOpLambda"})
# The TensorFlow functions a TF_OP_CLASSES layer may call: pure tensor arithmetic, as the Keras
# applications' preprocess_input and plain `x / 255.0` style expressions create them.
TF_OPS = frozenset({
    "__operators__.add", "__operators__.getitem", "math.add", "math.subtract", "math.multiply",
    "math.truediv", "math.divide", "math.negative", "math.maximum", "math.minimum", "math.abs",
    "math.square", "math.sqrt", "math.rsqrt", "math.exp", "math.log", "math.pow", "math.tanh",
    "math.sigmoid", "math.reduce_mean", "math.reduce_sum", "math.reduce_max", "math.reduce_min",
    "nn.bias_add", "nn.relu", "nn.relu6", "nn.softmax", "nn.silu", "nn.swish", "nn.gelu",
    "reshape", "concat", "stack", "squeeze", "expand_dims", "transpose", "cast", "clip_by_value",
    "compat.v1.transpose", "image.resize", "identity", "reverse", "split",
})
LAYER_CLASSES = LAYER_LIST_CLASSES | CODE_CLASSES | TF_OP_CLASSES | frozenset({
    # core and activations
    "InputLayer", "Dense", "EinsumDense", "Activation", "ReLU", "LeakyReLU", "PReLU", "ELU", "Softmax",
    "ThresholdedReLU", "Identity", "Embedding", "Masking",
    # convolution and pooling
    "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    # normalization and regularization
    "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization", "RMSNormalization",
    "SpectralNormalization",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    # preprocessing and augmentation
    "Normalization", "Rescaling", "Resizing", "CenterCrop", "RandomCrop", "RandomFlip", "RandomRotation",
    "RandomZoom", "RandomTranslation", "RandomContrast", "RandomBrightness", "RandomHeight", "RandomWidth",
    "RandomGrayscale", "RandomHue", "RandomSaturation", "RandomSharpness", "RandomShear", "RandomColorJitter",
    "RandomColorDegeneration", "RandomPosterization", "Solarization", "AutoContrast", "Equalization",
    "RandomInvert", "RandomErasing", "RandomGaussianBlur", "RandomPerspective", "RandomElasticTransform",
    "RandAugment", "AugMix", "MixUp", "CutMix",
    # merging
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
    # reshaping
    "Flatten", "Reshape", "Permute", "RepeatVector", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
    # wrappers and recurrent layers an image model may hold
    "TimeDistributed", "Bidirectional", "LSTM", "GRU", "SimpleRNN", "ConvLSTM2D",
    # attention (vision transformers)
    "MultiHeadAttention", "Attention", "AdditiveAttention",
})
# The Keras applications' own layer classes (Keras' code, not the file's): InceptionResNetV2, ConvNeXt.
# Keras registers them as "Custom>" + their name.
APPLICATION_LAYERS = frozenset({"CustomScaleLayer", "LayerScale", "StochasticDepth"})
LAYER_CLASSES |= APPLICATION_LAYERS
# Keras 3 operations a Functional model records as nodes (module keras.src.ops.*), e.g. from `x / 127.5 - 1`
# or the applications' preprocess_input: pure tensor arithmetic (their names may equal layers' names).
KERAS_OPS = frozenset({
    "Add", "Subtract", "Multiply", "TrueDivide", "Divide", "Negative", "Absolute", "Abs", "Square", "Sqrt",
    "Exp", "Log", "Power", "Maximum", "Minimum", "Clip", "Mean", "Sum", "Max", "Min", "GetItem", "Stack",
    "Concatenate", "Reshape", "Transpose", "ExpandDims", "Squeeze", "Flip", "Matmul", "Tanh", "Cast",
    "Relu", "Relu6", "Sigmoid", "Softmax", "Silu", "Gelu", "Resize",
})
KERAS_OPS_MODULE = "keras.src.ops."
SUBOBJECT_CLASSES = frozenset({
    # initializers
    "Zeros", "Ones", "Constant", "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
    "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform",
    "Orthogonal", "Identity", "IdentityInitializer", "OrthogonalInitializer", "STFTInitializer",
    # regularizers and constraints
    "L1", "L2", "L1L2", "OrthogonalRegularizer", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm",
    "RadialConstraint",
    # dtype policies (Keras 2 "Policy", Keras 3 "DTypePolicy" ...)
    "Policy", "DTypePolicy", "FloatDTypePolicy", "QuantizedDTypePolicy", "QuantizedFloat8DTypePolicy",
    "DTypePolicyMap",
    # records of values, not code: a tensor in a node's arguments, an array, a tuple, a shape, a slice
    "__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__", "__tuple__",
    "TensorShape", "function",
})
# Keras' built-in metrics: a compiled Keras 2 model's SavedModel holds one metadata node per metric.
METRIC_CLASSES = frozenset({
    "Mean", "Sum", "MeanTensor", "MeanMetricWrapper", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
    "SparseCategoricalAccuracy", "TopKCategoricalAccuracy", "SparseTopKCategoricalAccuracy", "AUC",
    "Precision", "Recall", "TruePositives", "TrueNegatives", "FalsePositives", "FalseNegatives",
    "PrecisionAtRecall", "RecallAtPrecision", "SensitivityAtSpecificity", "SpecificityAtSensitivity",
    "MeanSquaredError", "MeanAbsoluteError", "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError",
    "RootMeanSquaredError", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "BinaryCrossentropy",
    "KLDivergence", "Poisson", "CosineSimilarity", "LogCoshError", "Hinge", "SquaredHinge", "CategoricalHinge",
    "MeanIoU", "IoU", "BinaryIoU", "OneHotIoU", "OneHotMeanIoU", "MeanRelativeError", "F1Score", "FBetaScore",
    "R2Score",
})
METRIC_NODE = "_tf_keras_metric"  # a SavedModel metadata node's identifier for a metric
# Record "module"s that are Keras' own (a custom class names its own module); Keras 2 also records
# TensorFlow's initializers (tf.constant_initializer in EfficientNetV2) under their TF module.
KERAS_MODULE_PREFIXES = ("keras.", "tensorflow.python.ops.init_ops")
FORMATS = ("h5", "savedmodel", "keras")


def check_config(config, allow_unsafe=False):
    """Paths of the layers holding code (allowed only with allow_unsafe); XaiError for anything else unsafe."""
    return _check_tree(config, (), allow_unsafe)


def _check_tree(record, path, allow_unsafe):
    """check_config of the layer `record` found at `path` (() for the outermost model)."""
    if not isinstance(record, dict) or not isinstance(record.get("class_name"), str):
        raise XaiError("the model config is not a Keras object record (no class_name)")
    unsafe = []
    for where, layer in _layer_records(record, path):
        _check_layer(where, layer, allow_unsafe, unsafe)
    return unsafe


def _name(record):
    """A layer record's name (Keras 2 and 3 keep it in its config, Keras 2 models also beside it)."""
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    return str(config.get("name") or record.get("name") or record.get("class_name"))


def _layer_records(record, path):
    """(path, record) of `record` and of every layer record nested in it, at any depth."""
    yield path, record
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    layers = config.get("layers") if record.get("class_name") in LAYER_LIST_CLASSES else None
    children = [layer for layer in (layers if isinstance(layers, list) else [])]
    children += [config[key] for key in NESTED_LAYER_KEYS if config.get(key) is not None]
    for child in children:
        if not isinstance(child, dict):
            raise XaiError("layer %r holds a nested layer that is not a Keras object record" % ("/".join(path) or _name(record)))
        yield from _layer_records(child, path + (_name(child),))


def _check_layer(path, record, allow_unsafe, unsafe):
    """Check one layer record (and the objects in its config); append its path to `unsafe` if it holds code."""
    class_name = record.get("class_name")
    where = "/".join(path) or _name(record)
    _check_keras_origin(where, record)
    known = KERAS_OPS if str(record.get("module")).startswith(KERAS_OPS_MODULE) else LAYER_CLASSES
    if class_name not in known:
        raise XaiError("layer %r has the unknown type %r (a custom object); refused" % (where, class_name))
    reason = _code_reason(class_name, record)
    nested_code = _check_subobjects(where, record.get("config"), class_name in LAYER_LIST_CLASSES)
    nested_code = _check_subobjects(where, record.get("inbound_nodes"), False, "inbound_nodes") or nested_code
    reason = reason or (nested_code and "%s layer holding a Python function" % class_name)
    if reason:
        if not allow_unsafe:
            raise XaiError(
                "layer %r is a %s, which runs code stored in the file; refused "
                "(allow_unsafe=True, or TensorBoard's --xai_allow_unsafe_models, loads it)" % (where, reason)
            )
        unsafe.append(where)


def _code_reason(class_name, record):
    """Why a layer record runs code stored in the file ("Lambda layer", ...), or None."""
    if class_name in CODE_CLASSES:
        return "%s layer" % class_name
    if class_name in TF_OP_CLASSES and _tf_op(record) not in TF_OPS:
        return "%s layer calling tf.%s (not a pure tensor operation)" % (class_name, _tf_op(record))
    return None


def _tf_op(record):
    """The TensorFlow function a TFOpLambda / SlicingOpLambda record calls."""
    config = record.get("config") if isinstance(record.get("config"), dict) else {}
    return config.get("function")


def _check_keras_origin(where, record):
    """XaiError for a record whose "module" or "registered_name" (Keras 2.14 and 3 write them) is not Keras' own."""
    class_name, module, registered = record.get("class_name"), record.get("module"), record.get("registered_name")
    if module is not None and not (module in ("keras", "builtins") or str(module).startswith(KERAS_MODULE_PREFIXES)):
        raise XaiError("layer %r has the unknown type %r (a custom object, from module %r); refused" % (where, class_name, module))
    own = (None, class_name, "Custom>%s" % class_name if class_name in APPLICATION_LAYERS else None)
    if registered not in own and class_name != "function":
        raise XaiError("layer %r has the unknown type %r (a custom object, registered as %r); refused" % (where, class_name, registered))


def _check_subobjects(where, value, is_model, key=None):
    """True if `value` (a layer's config, minus its nested layers) holds a Keras 3 '__lambda__'; XaiError for unknown objects."""
    code = False
    if isinstance(value, dict):
        class_name = value.get("class_name")
        if key is not None and isinstance(class_name, str):
            if class_name == "__lambda__":
                return True
            _check_keras_origin(where, value)
            if class_name not in SUBOBJECT_CLASSES:
                raise XaiError("layer %r holds an object of the unknown type %r in %r (a custom object); refused"
                               % (where, class_name, key))
        for k, v in value.items():
            if key is None and (k in NESTED_LAYER_KEYS or (is_model and k == "layers")):
                continue  # nested layers: checked as layers by check_config
            code = _check_subobjects(where, v, False, k) or code
    elif isinstance(value, list):
        for v in value:
            code = _check_subobjects(where, v, False, key) or code
    return code


def check_file(path, fmt, allow_unsafe=False):
    """check_config of the model config stored in the file at `path` ("h5", "savedmodel" or "keras")."""
    if fmt not in FORMATS:
        raise XaiError("unsupported checkpoint format %r (known: %s)" % (fmt, ", ".join(FORMATS)))
    if fmt != "savedmodel":
        return check_config(read_config(path, fmt), allow_unsafe)
    unsafe = []
    for node_path, identifier, record in savedmodel_nodes(path):
        if identifier == METRIC_NODE:
            _check_metric(node_path, record)
        else:
            unsafe += [p for p in _check_tree(record, node_path, allow_unsafe) if p not in unsafe]
    return unsafe


def _check_metric(path, record):
    """XaiError unless a SavedModel metric node is one of Keras' built-in metrics."""
    where = "/".join(path)
    _check_keras_origin(where, record)
    if record.get("class_name") not in METRIC_CLASSES:
        raise XaiError("metric %r has the unknown type %r (a custom object); refused" % (where, record.get("class_name")))


def read_config(path, fmt):
    """The model config of an .h5 or .keras file (a dict), read without building or running anything."""
    name = os.path.basename(path)
    try:
        if fmt == "keras":
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json").decode("utf-8"))
        import h5py

        with h5py.File(path, "r") as f:
            text = f.attrs.get("model_config")
        if text is None:
            raise XaiError("checkpoint %s has no model config (weights only?)" % name)
        return json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise XaiError("checkpoint %s is unreadable: %s" % (name, e)) from e


def savedmodel_nodes(path):
    """(path of names, identifier, record) of every node of a SavedModel's keras_metadata.pb; the root's path is ()."""
    from google.protobuf.message import DecodeError

    name = os.path.basename(path)
    metadata_path = os.path.join(path, "keras_metadata.pb")
    if not os.path.exists(metadata_path):
        raise XaiError("SavedModel %s has no Keras metadata" % name)
    saved = _saved_metadata_proto()
    try:
        with open(metadata_path, "rb") as f:
            saved.ParseFromString(f.read())
        nodes = [(node.node_path, node.identifier, json.loads(node.metadata)) for node in saved.nodes]
    except (OSError, ValueError, DecodeError) as e:
        raise XaiError("SavedModel %s has unreadable Keras metadata: %s" % (name, e)) from e
    if not any(node_path == "root" for node_path, _, _ in nodes):
        raise XaiError("SavedModel %s has no root model in its Keras metadata" % name)
    names = {node_path: _name(record) for node_path, _, record in nodes if isinstance(record, dict)}
    return [(_node_names(node_path, names), identifier, record) for node_path, identifier, record in nodes]


def _node_names(node_path, names):
    """The path of names of a node ("root.layer-1.layer" -> ("td", "lam")): its and its ancestors' below the root."""
    parts = node_path.split(".")
    ancestors = (".".join(parts[:i]) for i in range(2, len(parts) + 1))
    return tuple(names[a] for a in ancestors if a in names)


def _saved_metadata_proto():
    """An empty SavedMetadata message (Keras 2's protobuf; tf_keras' under Keras 3)."""
    try:
        from keras.protobuf import saved_metadata_pb2
    except ImportError:
        try:
            from tf_keras.protobuf import saved_metadata_pb2
        except ImportError as e:
            raise XaiError("a SavedModel's Keras metadata needs Keras 2 (or tf_keras) to be read") from e
    return saved_metadata_pb2.SavedMetadata()


def check_model(model, allow_unsafe=False):
    """check_config of the config an in-memory Keras model saves (at log time); XaiError if it has none."""
    try:
        config = json.loads(model.to_json())
    except NotImplementedError as e:
        raise XaiError("model %r has no config (a subclassed model?): build it as Functional or Sequential" % model.name) from e
    return check_config(config, allow_unsafe)
