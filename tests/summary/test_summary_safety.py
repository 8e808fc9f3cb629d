"""The one model-safety check (tb_xai_plugin.safety) on every nesting we can build, in every file format of
this stack, at log time (summary.checkpoint, XaiCallback) and import time (`tb-xai import`): a layer
holding code is refused, named by its path, and the marker its function would write stays absent."""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tb_xai_plugin import cli, files, safety, summary
from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.keras import XaiCallback
from tests import unsafe_models as um

REFUSED = "is a Lambda layer, which runs code stored in the file; refused"


@pytest.fixture(scope="module")
def marker(tmp_path_factory):
    """The path every Lambda of this module writes to when its stored code runs (absent between tests)."""
    return str(tmp_path_factory.mktemp("marker") / "code-ran")


@pytest.fixture(scope="module")
def nestings(marker):
    """{nesting: model}, every model of um.NESTINGS built once."""
    return {key: um.build(builder, marker) for key, (builder, _) in um.NESTINGS.items()}


@pytest.fixture(scope="module")
def saved(nestings, marker, tmp_path_factory):
    """{(nesting, format): path} of every nesting saved in every format of this stack."""
    paths = {}
    for key, model in nestings.items():
        for fmt in um.FORMATS:
            paths[key, fmt] = um.save(model, tmp_path_factory.mktemp(key + "_" + fmt), fmt)
    if os.path.exists(marker):
        os.remove(marker)  # a SavedModel traces the model while saving: the test's own call
    return paths


@pytest.fixture(autouse=True)
def no_code_ran(marker):
    """Every test leaves the marker absent (a test that runs the code on purpose removes it)."""
    yield
    assert not os.path.exists(marker), "a Lambda's stored code ran"


@pytest.mark.parametrize("fmt", um.FORMATS)
@pytest.mark.parametrize("key", sorted(um.NESTINGS))
def test_every_nesting_is_refused_in_every_file_format(saved, key, fmt):
    path = saved[key, fmt]
    layer = um.NESTINGS[key][1]
    with pytest.raises(XaiError, match="layer '%s' %s" % (layer, REFUSED)):
        safety.check_file(path, fmt)
    assert safety.check_file(path, fmt, allow_unsafe=True) == [layer]


@pytest.mark.parametrize("key", sorted(um.NESTINGS))
def test_every_nesting_is_refused_in_memory(nestings, key):
    layer = um.NESTINGS[key][1]
    with pytest.raises(XaiError, match="layer '%s' %s" % (layer, REFUSED)):
        safety.check_model(nestings[key])
    assert safety.check_model(nestings[key], allow_unsafe=True) == [layer]


@pytest.mark.stack("keras2")  # Keras 3 writes no SavedModel with Keras metadata (model.export has none)
def test_every_node_of_a_savedmodel_is_checked_not_only_the_root(saved, tmp_path):
    path = shutil.copytree(saved["model_in_time_distributed", "savedmodel"], str(tmp_path / "savedmodel"))

    def hide(identifier, record):  # no model's or wrapper's config shows the Lambda any more: only its own node
        if record["class_name"] in safety.MODEL_CLASSES:
            record["config"]["layers"] = []
        if record["class_name"] == "TimeDistributed":
            record["config"]["layer"] = {"class_name": "Dense", "config": {"name": "inner", "units": 1}}

    _edit_savedmodel(path, hide)
    with pytest.raises(XaiError, match="layer 'td/inner/lam' %s" % REFUSED):
        safety.check_file(path, "savedmodel")


def _edit_savedmodel(path, edit):
    """Rewrite every node record of a SavedModel's keras_metadata.pb with edit(identifier, record)."""
    proto = safety._saved_metadata_proto()
    with open(os.path.join(path, "keras_metadata.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    for node in proto.nodes:
        record = json.loads(node.metadata)
        edit(node.identifier, record)
        node.metadata = json.dumps(record)
    with open(os.path.join(path, "keras_metadata.pb"), "wb") as f:
        f.write(proto.SerializeToString())


@pytest.mark.stack("keras2")  # Keras 3 writes no SavedModel with Keras metadata (model.export has none)
def test_a_compiled_savedmodel_passes_with_builtin_metrics_only(tmp_path):
    model = um.safe_time_distributed()
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy", tf.keras.metrics.SparseTopKCategoricalAccuracy(2)])
    model.fit(um.images() / 255.0, np.array([0, 1, 2, 0]), epochs=1, verbose=0)  # metrics exist once used
    path = um.save(model, tmp_path, "savedmodel")
    assert safety.check_file(path, "savedmodel") == []
    _edit_savedmodel(path, lambda identifier, record: record.update(class_name="Sneaky") if identifier == safety.METRIC_NODE else None)
    with pytest.raises(XaiError, match="metric 'loss' has the unknown type 'Sneaky'"):
        safety.check_file(path, "savedmodel")


def _load_unsafely(path):
    """Load `path` with Keras allowing code (the control: it shows the planted code is live)."""
    kwargs = {"safe_mode": False} if um.KERAS_3 else {}
    return tf.keras.models.load_model(path, compile=False, **kwargs)


EDITABLE = [fmt for fmt in um.FORMATS if fmt != "savedmodel"]


@pytest.mark.parametrize("fmt", EDITABLE)
def test_a_lambda_hidden_in_a_wrapper_by_editing_the_file_is_refused_and_was_live(tmp_path, marker, fmt):
    path = um.save(um.safe_time_distributed(), tmp_path, fmt)
    assert safety.check_file(path, fmt) == []
    um.hide_in_wrapper(path, fmt, um.lambda_record(marker))
    with pytest.raises(XaiError, match="layer 'td/lam' %s" % REFUSED):
        safety.check_file(path, fmt)
    _load_unsafely(path)
    assert os.path.exists(marker)  # the edited file really carries code that runs on load
    os.remove(marker)


def test_a_lambda_hidden_as_a_bidirectional_backward_layer_is_refused(tmp_path, marker):
    path = um.save(um.in_bidirectional(marker), tmp_path, "h5")
    assert safety.check_file(path, "h5") == []
    um.hide_in_wrapper(path, "h5", um.lambda_record(marker), wrapper="bi", key="backward_layer")
    with pytest.raises(XaiError, match="layer 'bi/lam' %s" % REFUSED):
        safety.check_file(path, "h5")


@pytest.mark.parametrize("fmt", um.FORMATS)
def test_a_custom_class_is_refused_even_when_code_is_allowed(tmp_path, fmt):
    model = um.custom()
    with pytest.raises(XaiError, match="layer 'doubling' has the unknown type 'Doubling' \\(a custom object"):
        safety.check_model(model, allow_unsafe=True)
    path = um.save(model, tmp_path, fmt)
    with pytest.raises(XaiError, match="unknown type 'Doubling'"):
        safety.check_file(path, fmt, allow_unsafe=True)


def _functional(*layers):
    """A hand-written Functional config record holding `layers` (Keras 2 shape unless they carry a module)."""
    return {"class_name": "Functional", "config": {"name": "outer", "layers": list(layers)}}


def _layer(class_name, name, **config):
    """A layer record {"class_name", "config": {"name", ...}}."""
    return {"class_name": class_name, "config": dict(config, name=name)}


@pytest.mark.parametrize(
    "record, message",
    [
        (_layer("TFOpLambda", "write", function="io.write_file"), "'write' is a TFOpLambda layer calling tf.io.write_file"),
        (_layer("SlicingOpLambda", "s", function="raw_ops.Save"), "'s' is a SlicingOpLambda layer calling tf.raw_ops.Save"),
        (dict(_layer("Dense", "d", units=1), module="evil.layers"), "'d' has the unknown type 'Dense' (a custom object, from module 'evil.layers')"),
        (dict(_layer("Dense", "d", units=1), module="keras.layers", registered_name="evil>Dense"), "registered as 'evil>Dense'"),
        (dict(_layer("Conv2D", "c", filters=1), module="keras.src.ops.numpy"), "'c' has the unknown type 'Conv2D'"),
        (_layer("Dense", "d", kernel_initializer={"class_name": "Evil", "config": {}}), "unknown type 'Evil' in 'kernel_initializer'"),
        (
            _layer("Dense", "d", kernel_initializer={"class_name": "__lambda__", "config": {"value": "..."}}),
            "'d' is a Dense layer holding a Python function",
        ),
        (_layer("TimeDistributed", "td", layer=_layer("Sequential", "seq", layers=[_layer("Lambda", "lam")])), "'td/seq/lam' is a Lambda"),
        (_layer("Pipeline", "aug", layers=[_layer("RandomFlip", "flip"), _layer("Lambda", "lam")]), "'aug/lam' is a Lambda"),
        (_layer("SpectralNormalization", "sn", layer=_layer("Lambda", "lam")), "'sn/lam' is a Lambda"),
        (_layer("TimeDistributed", "td", layer=["not", "a", "record"]), "'td' holds a nested layer that is not a Keras object record"),
    ],
)
def test_hand_written_configs_are_refused(record, message):
    with pytest.raises(XaiError, match=message.replace("(", "\\(").replace(")", "\\)")):
        safety.check_config(_functional(record))


def test_what_keras_itself_writes_passes():
    constant = {"module": "tensorflow.python.ops.init_ops_v2", "class_name": "Constant", "config": {"value": 0.1}}
    layers = [
        _layer("TFOpLambda", "scale", function="math.truediv"),
        _layer("SlicingOpLambda", "bgr", function="__operators__.getitem"),
        dict(_layer("TrueDivide", "div"), module="keras.src.ops.numpy", registered_name="TrueDivide"),
        dict(_layer("Dense", "d", units=2), module="keras.layers", registered_name=None),
        _layer("Dense", "v2", units=2, bias_initializer=constant),  # Keras 2 EfficientNetV2's head
        dict(_layer("CustomScaleLayer", "s"), module="keras.src.applications.inception_resnet_v2",
             registered_name="Custom>CustomScaleLayer"),  # fmt: skip
    ]
    assert safety.check_config(_functional(*layers)) == []
    impostor = dict(_layer("Dense", "d", units=2), module="keras.layers", registered_name="Custom>Dense")
    with pytest.raises(XaiError, match="registered as 'Custom>Dense'"):
        safety.check_config(_functional(impostor))


def test_keras_applications_and_their_preprocessing_pass(tmp_path):
    inputs = tf.keras.Input((32, 32, 3))
    x = tf.keras.applications.vgg16.preprocess_input(inputs)  # caffe: flip to BGR, subtract means
    x = tf.keras.applications.mobilenet_v2.preprocess_input(x)  # tf: x / 127.5 - 1
    base = tf.keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, weights=None, include_top=False)
    outputs = tf.keras.layers.Dense(3, activation="softmax")(tf.keras.layers.GlobalAveragePooling2D()(base(x)))
    model = tf.keras.Model(inputs, outputs)
    assert safety.check_model(model) == []
    path = um.save(model, tmp_path, um.FORMATS[0])
    assert safety.check_file(path, um.FORMATS[0]) == []


def test_files_that_are_not_models_are_refused_readably(tmp_path):
    (tmp_path / "fake.h5").write_bytes(b"not hdf5" * 10)
    with pytest.raises(XaiError, match="unreadable"):
        safety.check_file(str(tmp_path / "fake.h5"), "h5")
    with pytest.raises(XaiError, match="unreadable"):
        safety.check_file(str(tmp_path / "fake.h5"), "keras")
    with pytest.raises(XaiError, match="no Keras metadata"):
        safety.check_file(str(tmp_path), "savedmodel")
    with pytest.raises(XaiError, match="unsupported checkpoint format 'pickle'"):
        safety.check_file(str(tmp_path / "fake.h5"), "pickle")


def _log(model, run_dir, **kwargs):
    """summary.checkpoint(model) at step 1 into run_dir."""
    writer = summary.create_file_writer(run_dir)
    try:
        with writer.as_default():
            return summary.checkpoint(model, step=1, class_names=["a", "b", "c"], **kwargs)
    finally:
        writer.close()


@pytest.mark.parametrize("key", sorted(um.NESTINGS))
def test_logging_refuses_at_once_and_writes_nothing(nestings, tmp_path, key):
    with pytest.raises(XaiError, match="layer '%s' %s" % (um.NESTINGS[key][1], REFUSED)):
        _log(nestings[key], str(tmp_path / "run"))
    assert not os.path.exists(files.checkpoints_dir(str(tmp_path / "run")))


@pytest.mark.parametrize("key", ["top_sequential", "model_in_time_distributed"])
def test_logging_with_allow_unsafe_marks_the_manifest(nestings, tmp_path, key):
    run_dir = str(tmp_path / "run")
    assert _log(nestings[key], run_dir, allow_unsafe=True)
    (manifest,) = files.checkpoint_manifests(run_dir)
    assert manifest["unsafe_layers"] == [um.NESTINGS[key][1]]
    assert _log(um.safe_time_distributed(), run_dir)  # the same step logged again, safe: no mark
    (manifest,) = files.checkpoint_manifests(run_dir)
    assert "unsafe_layers" not in manifest


def test_logging_refuses_a_custom_class_even_with_allow_unsafe(tmp_path):
    with pytest.raises(XaiError, match="unknown type 'Doubling'"):
        _log(um.custom(), str(tmp_path / "run"), allow_unsafe=True)
    assert not os.path.exists(files.checkpoints_dir(str(tmp_path / "run")))


class BatchCounter(tf.keras.callbacks.Callback):
    """Counts the training batches that ran."""

    batches = 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1


def _fit(model, log_dir, **kwargs):
    """Fit `model` one epoch on 4 images with XaiCallback(log_dir, **kwargs): the batch counter."""
    model.compile("sgd", "sparse_categorical_crossentropy")
    counter = BatchCounter()
    x, y = um.images().astype(np.float32) / 255.0, np.array([0, 1, 2, 0])
    model.fit(x, y, epochs=1, batch_size=2, verbose=0, callbacks=[XaiCallback(log_dir, **kwargs), counter])
    return counter


def test_the_callback_stops_fit_before_any_batch(marker, tmp_path):
    model = um.build(um.in_time_distributed, marker)
    counter = BatchCounter()
    model.compile("sgd", "sparse_categorical_crossentropy")
    with pytest.raises(XaiError, match="layer 'td/lam' %s" % REFUSED):
        model.fit(um.images() / 255.0, np.array([0, 1, 2, 0]), epochs=1, verbose=0,
                  callbacks=[XaiCallback(str(tmp_path / "run")), counter])  # fmt: skip
    assert counter.batches == 0 and not os.path.exists(marker)
    assert not os.path.exists(files.checkpoints_dir(str(tmp_path / "run")))


def test_the_callback_with_allow_unsafe_marks_every_checkpoint(marker, tmp_path):
    counter = _fit(um.build(um.nested, marker), str(tmp_path / "run"), allow_unsafe=True)
    os.remove(marker)  # training ran the user's own Lambda, in the user's own process
    assert counter.batches == 2
    (manifest,) = files.checkpoint_manifests(str(tmp_path / "run"))
    assert manifest["unsafe_layers"] == ["inner/lam"]


@pytest.mark.parametrize("fmt", um.FORMATS)
@pytest.mark.parametrize("key", ["top_functional", "nested_two_deep", "model_in_time_distributed"])
def test_tb_xai_import_refuses_before_loading(saved, tmp_path, capsys, key, fmt):
    logdir = str(tmp_path / "logs")
    assert cli.main(["import", "--logdir", logdir, "--run", "r", "--model", saved[key, fmt]]) == 2
    err = capsys.readouterr().err
    assert "layer '%s' %s" % (um.NESTINGS[key][1], REFUSED) in err and "--allow-unsafe" in err
    assert not os.path.exists(logdir)


def test_tb_xai_import_with_allow_unsafe_marks_the_checkpoint(saved, tmp_path, marker):
    logdir = str(tmp_path / "logs")
    path = saved["in_time_distributed", um.FORMATS[0]]
    assert cli.main(["import", "--logdir", logdir, "--run", "r", "--model", path, "--allow-unsafe"]) == 0
    if os.path.exists(marker):
        os.remove(marker)  # asked for: the import loaded the model, running its Lambda
    (manifest,) = files.checkpoint_manifests(os.path.join(logdir, "r"))
    assert manifest["unsafe_layers"] == ["td/lam"]
