"""Summary ops that log what the XAI tab explains: model checkpoints and sample images.

Used like `tf.summary` ops, eagerly, in the user's training code:

    writer = tb_xai_plugin.summary.create_file_writer("logs/cnn")
    with writer.as_default(step=0):
        tb_xai_plugin.summary.samples("validation", x_val, labels=y_val, class_names=names)
        ...
        tb_xai_plugin.summary.checkpoint(model, step=epoch + 1, class_names=names)

Heavy data goes to files under `<run>/plugins/xai/` (layout in `metadata`), each written under a
temporary name and renamed into place, its manifest after it; only then the event file gets a
small index summary (JSON text, `plugin_name="xai"`, `DATA_CLASS_TENSOR`).

Where the files go: a tf.summary writer keeps its folder inside its C++ resource, and no public
API (TensorFlow 2.14 to 2.21) reads it back (docs/logging.md), so the run folder is `logdir=` when
given, otherwise the folder of the default writer if that writer was made by `create_file_writer`
here (a thin wrapper that remembers it). A default writer made by plain
`tf.summary.create_file_writer` needs `logdir=`; the ops say so instead of guessing. Which writer
is the default is read from tf.summary's own thread-local state (there is no public getter), so
the files always follow the writer that receives the index summary.

Which Keras: a Keras 3 model (any Keras backend: TensorFlow, JAX, PyTorch) is stored as a `.keras`
file (format "keras"), a Keras 2 model as `.h5` (or a SavedModel folder if h5 cannot hold it); the
manifest records the writing Keras' version in versions.keras. Only a graph of layers (Functional or
Sequential, nested ones included) can be stored and explained: a subclassed model is refused.

The ops validate everything before writing anything: bad input raises XaiError and leaves the run
as it was. They run eagerly only (they save files); in graph mode they raise XaiError.
"""

import collections
import json
import os
import sys
import tempfile
import time
import warnings
import weakref

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2

import tb_xai_plugin
from tb_xai_plugin import files, metadata, model_info, retention, safety
from tb_xai_plugin.errors import XaiError

# writer -> the folder it writes to, for writers made by create_file_writer below.
_WRITER_LOGDIRS = weakref.WeakKeyDictionary()

KERAS_PACKAGES = ("keras", "tf_keras")

SampleSet = collections.namedtuple("SampleSet", "images labels ids class_names")


def create_file_writer(logdir, **kwargs):
    """tf.summary.create_file_writer(logdir, **kwargs) that remembers `logdir` for the xai ops."""
    logdir = os.fspath(logdir)
    files.ensure_dir(logdir)
    writer = tf.summary.create_file_writer(logdir, **kwargs)
    _WRITER_LOGDIRS[writer] = logdir
    return writer


def _default_writer():
    """The writer that `tf.summary.write` would use now, or None."""
    from tensorflow.python.ops import summary_ops_v2  # no public getter for the default writer

    return summary_ops_v2._summary_state.writer  # pylint: disable=protected-access


def _run_dir(logdir):
    """The run folder for the files: `logdir`, else the default writer's known folder; XaiError if unknown."""
    known = _WRITER_LOGDIRS.get(_default_writer())
    if logdir is None:
        if known is None:
            raise XaiError(
                "cannot tell which folder the default summary writer writes to (a tf.summary writer does not "
                "expose it): create the writer with tb_xai_plugin.summary.create_file_writer(logdir), or pass logdir="
            )
        return known
    logdir = os.fspath(logdir)
    if known is not None and os.path.normpath(known) != os.path.normpath(logdir):
        raise XaiError("logdir=%r differs from the default writer's folder %r" % (logdir, known))
    return logdir


def _step(step):
    """`step` (or tf.summary's default step) as a non-negative int; XaiError if missing or invalid."""
    if step is None:
        step = tf.summary.experimental.get_step()
    if step is None:
        raise XaiError("no step: pass step= or set one with tf.summary.experimental.set_step / as_default(step)")
    value = np.asarray(step.numpy() if hasattr(step, "numpy") else step)
    if value.shape != () or value.dtype.kind not in "iu" or int(value) < 0:
        raise XaiError("step must be a non-negative integer, not %r" % (step,))
    return int(value)


def _check_eager():
    """XaiError unless executing eagerly: the ops save files, which a graph cannot do."""
    if not tf.executing_eagerly():
        error = XaiError("the xai summary ops run eagerly: call them outside tf.function, with eager execution on")
        error.ag_pass_through = True  # inside tf.function autograph would re-raise it as its StagingError
        raise error


def _recording():
    """True if a default writer exists and tf.summary.record_if allows writing now."""
    return _default_writer() is not None and bool(tf.summary.should_record_summaries())


def _write_index(tag, fields, step, kind):
    """Write the small index summary (JSON text of `fields`) that points TensorBoard at the files."""
    summary_metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=metadata.PLUGIN_NAME, content=metadata.index_content(kind)
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )
    return bool(tf.summary.write(tag=tag, tensor=tf.constant(json.dumps(fields)), step=step, metadata=summary_metadata))


def _keras_package(model):
    """The Keras package (keras 2 or 3, or tf_keras) whose Model class `model` is, or None if it is no Keras model."""
    for cls in type(model).__mro__:
        package = cls.__module__.split(".")[0]
        if cls.__name__ == "Model" and package in KERAS_PACKAGES:
            return sys.modules[package]
    return None


def keras_version(model):
    """The version of the Keras that `model` belongs to, or None if it is no Keras model."""
    package = _keras_package(model)
    return None if package is None else package.__version__


def _keras_backend(model):
    """The backend a Keras 3 `model` runs on ("tensorflow", "jax", "torch"); "tensorflow" for Keras 2."""
    package = _keras_package(model)
    return package.backend.backend() if package.__version__.startswith("3") else "tensorflow"


def _versions(model):
    """Library versions recorded in each checkpoint manifest; keras: the Keras `model` belongs to."""
    return {
        "tensorflow": tf.__version__,
        "keras": keras_version(model),
        "keras_backend": _keras_backend(model),
        "tb_xai_plugin": tb_xai_plugin.__version__,
        "python": "%d.%d.%d" % sys.version_info[:3],
    }


def _check_class_names(class_names, count, what):
    """`class_names` as a list of `count` strings (default '0'..'count-1'); XaiError otherwise."""
    if class_names is None:
        return [str(i) for i in range(count)]
    if isinstance(class_names, (str, bytes)) or not all(isinstance(c, str) for c in class_names):
        raise XaiError("class_names must be a list of strings")
    class_names = list(class_names)
    if len(class_names) != count:
        raise XaiError("%s has %d classes but %d class_names were given" % (what, count, len(class_names)))
    return class_names


def _single_shape(shape, what):
    """A Keras shape of one tensor as a tuple; XaiError for a model with several inputs or outputs."""
    if isinstance(shape, list):
        if len(shape) != 1:
            raise XaiError("the model must have one %s, it has %d" % (what, len(shape)))
        shape = shape[0]
    return tuple(shape)


def describe_model(model, class_names=None, preprocessing=None):
    """The manifest fields that come from the model itself; XaiError if it is not an image classifier."""
    if keras_version(model) is None:
        raise XaiError("expected a Keras model, got %s" % type(model).__name__)
    try:
        input_shape = _single_shape(model.input_shape, "input")
        output_shape = _single_shape(model.output_shape, "output")
    except AttributeError as e:
        raise XaiError(
            "model %r is a subclassed Keras model (its call() is Python code, not a graph of layers), which "
            "cannot be saved and reloaded as a graph: build it as a Functional or Sequential model" % model.name
        ) from e
    if len(input_shape) != 4 or any(d is None for d in input_shape[1:]):
        raise XaiError("the model's input must be images [batch, H, W, C] of known size, not %s" % (input_shape,))
    if len(output_shape) != 2 or output_shape[1] is None:
        raise XaiError("the model's output must be class scores [batch, classes], not %s" % (output_shape,))
    head = _head(model, int(output_shape[1]))
    num_classes = 2 if head in model_info.BINARY_HEADS else int(output_shape[1])
    return {
        "model_name": model.name,
        "input_shape": [int(d) for d in input_shape[1:]],
        "num_classes": num_classes,
        "class_names": _check_class_names(class_names, num_classes, "the model (%s head)" % head),
        "preprocessing": _check_keras_app(metadata.check_preprocessing(preprocessing)),
        "output_activation": model_info.output_activation(model),
        "head": head,
        "layers": model_info.describe_layers(model),
        "weights_sha256": model_info.weights_checksum(model.get_weights()),
    }


def _head(model, units):
    """The model's head kind (model_info.HEADS); XaiError when its output is no class scores or its logit is out of reach."""
    activation = model_info.output_activation(model)
    problem = model_info.head_problem(activation, units)
    if problem:
        raise XaiError("model %r cannot be explained: %s" % (model.name, problem))
    head = model_info.head_kind(activation, units)
    if head in model_info.BINARY_HEADS and model_info.logit_layer(model) is None:
        raise XaiError(
            "model %r cannot be explained: its one output unit must come from a Dense layer (optionally followed by an "
            "Activation), whose logit explains the negative class negated" % model.name
        )
    return head


def _check_keras_app(preprocessing):
    """`preprocessing`, after checking that a keras_app module has a preprocess_input."""
    if preprocessing["type"] == "keras_app":
        module = getattr(tf.keras.applications, preprocessing["module"], None)
        if not hasattr(module, "preprocess_input"):
            raise XaiError("tf.keras.applications has no module %r with preprocess_input" % preprocessing["module"])
    return preprocessing


def _save_model(model, folder):
    """Save `model` into local `folder`: (path, format); .keras from Keras 3, else h5 or a SavedModel."""
    if keras_version(model).startswith("3"):
        return _save_keras3(model, folder)
    path = os.path.join(folder, "model.h5")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*HDF5 file.*legacy", category=UserWarning)
            model.save(path, save_format="h5", include_optimizer=False)
        return path, "h5"
    except Exception as e:  # noqa: BLE001 - Keras raises many types for what h5 cannot hold
        h5_error = e
        if os.path.exists(path):
            os.remove(path)
    path = os.path.join(folder, "savedmodel")
    try:
        model.save(path, save_format="tf", include_optimizer=False)
    except Exception as e:  # noqa: BLE001 - any failure to save is the model's problem, told to the user
        raise XaiError("cannot save model %r as h5 (%s) or as a SavedModel (%s)" % (model.name, h5_error, e)) from e
    return path, "savedmodel"


def _save_keras3(model, folder):
    """Save a Keras 3 `model` into local `folder` as a .keras file, without its optimizer: (path, "keras")."""
    path = os.path.join(folder, "model.keras")
    optimizer = getattr(model, "optimizer", None)
    try:
        model.optimizer = None  # Keras 3 saves an optimizer it finds (3x the weights with Adam), and has no switch
        model.save(path)
    except Exception as e:  # noqa: BLE001 - any failure to save is the model's problem, told to the user
        raise XaiError("cannot save model %r as .keras: %s" % (model.name, e)) from e
    finally:
        model.optimizer = optimizer
    return path, "keras"


def checkpoint(
    model, step=None, *, class_names=None, preprocessing=None, name=None, logdir=None, allow_unsafe=False,
    metric=None, metric_name="metric", metric_mode="min", keep_last=None, keep_every=None,
):  # fmt: skip
    """Log `model` as the checkpoint at `step` of the current run.

    Arguments:
      model: a Functional or Sequential Keras model (Keras 2, or Keras 3 on any backend) from images
        [N, H, W, C] to class scores [N, K].
      step: the training step; defaults to `tf.summary.experimental.get_step()`.
      class_names: K strings; default '0'..'K-1'. A binary head (one sigmoid or linear unit) has two classes:
        the negative class's name first, e.g. ["cat", "dog"] for a sigmoid that says "dog" (docs/heads.md).
      preprocessing: how a stored image becomes the model's input (`metadata.PREPROCESSING_TYPES`);
        default {"type": "none"}.
      name: a name scope for the summary op.
      logdir: the run folder; needed only when the default writer was not made by `create_file_writer`.
      allow_unsafe: log a model whose layers hold Python code (a Lambda, at any depth; see `safety`) and
        list them in the manifest's "unsafe_layers"; TensorBoard loads it only with --xai_allow_unsafe_models.
      metric: a number recorded in the manifest (with `metric_name`) that picks the run's best checkpoint, the
        lowest one (`metric_mode="min"`) or the highest ("max"), which retention always keeps.
      keep_last, keep_every: a retention policy (`retention.Policy`) applied to the run after this checkpoint is
        written: keep the last `keep_last` and the steps that are multiples of `keep_every`, always the first
        and the best; the default (both None) keeps everything.

    Returns:
      True if written, False if there is no default writer or `tf.summary.record_if` says not now.

    Raises:
      XaiError: for a non-model, a model holding code (unless allow_unsafe) or a layer class `safety` does
        not know, a model that cannot be explained (its output is no class scores, or a one-unit head without
        a Dense layer; see model_info.head_problem), an invalid argument or an unwritable run folder; nothing
        is written then.
    """
    _check_eager()
    fields = describe_model(model, class_names, preprocessing)
    unsafe_layers = safety.check_model(model, allow_unsafe)
    policy = retention.Policy(keep_last, keep_every)
    metric = None if metric is None else retention.metric_record(metric, metric_name, metric_mode)
    step = _step(step)
    if not _recording():
        return False
    run_dir = _run_dir(logdir)
    files.ensure_dir(files.checkpoints_dir(run_dir))
    with tempfile.TemporaryDirectory(prefix="tb_xai_") as local:
        local_path, fmt = _save_model(model, local)
        safety.check_file(local_path, fmt, allow_unsafe)  # the file the plugin will read passes the same check
        data_path, manifest_path = files.checkpoint_paths(run_dir, step, fmt)
        file_sha256 = files.copy_in(local_path, data_path) or files.sha256(os.path.join(data_path, "saved_model.pb"))
    manifest = dict(
        fields,
        format_version=metadata.FORMAT_VERSION,
        kind=metadata.KIND_CHECKPOINT,
        step=step,
        file=os.path.basename(data_path),
        format=fmt,
        file_sha256=file_sha256,
        versions=_versions(model),
        wall_time=time.time(),
    )
    if unsafe_layers:
        manifest["unsafe_layers"] = unsafe_layers
    if metric is not None:
        manifest["metric"] = metric
    _publish_manifest(manifest_path, manifest, data_path)
    for other in metadata.CHECKPOINT_FORMATS.keys() - {fmt}:  # a step logged again in another format
        files.remove_quietly(files.checkpoint_paths(run_dir, step, other)[0])
    index = {k: manifest[k] for k in ("step", "file", "format", "model_name", "input_shape", "num_classes")}
    index.update(weights_sha256=manifest["weights_sha256"], wall_time=manifest["wall_time"])
    with tf.name_scope(name or "xai_checkpoint"):
        written = _write_index(metadata.CHECKPOINT_TAG, index, step, metadata.KIND_CHECKPOINT)
    if not policy.keeps_everything:
        retention.apply(run_dir, policy)
    return written


def _publish_manifest(manifest_path, manifest, data_path):
    """Write the manifest after its data; if that fails, remove the data so no orphan is left."""
    try:
        files.write_json(manifest_path, manifest)
    except XaiError:
        files.remove_quietly(data_path)
        raise


def _check_images(images):
    """Images as NHWC uint8 or float32 (grayscale HxW or NHW gains axes); XaiError if unusable."""
    try:
        array = np.asarray(images)
    except (ValueError, TypeError) as e:
        raise XaiError("images must be one array of equal-sized images: %s" % e) from e
    if array.dtype.kind not in "uif":
        raise XaiError("images must be numbers (uint8 0..255 or float), not dtype %s" % array.dtype)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim == 3:
        array = array[..., np.newaxis]
    if array.ndim != 4 or array.shape[-1] not in (1, 3) or 0 in array.shape:
        raise XaiError("images must be [N, H, W, C] with C 1 or 3 (or grayscale [N, H, W]), not shape %s" % (array.shape,))
    if array.dtype.kind in "ui":
        if array.min() < 0 or array.max() > 255:
            raise XaiError("integer images must lie in 0..255, found %s..%s" % (array.min(), array.max()))
        return array.astype(np.uint8, copy=False)
    with np.errstate(over="ignore"):  # values beyond float32 become inf, reported just below
        array = array.astype(np.float32, copy=False)
    if not np.isfinite(array).all():
        raise XaiError("images contain NaN or infinite values (after conversion to float32)")
    return array


def _check_labels(labels, count, class_names):
    """Labels as int64 [N] (-1 for none; one-hot rows become indices); XaiError if unusable."""
    if labels is None:
        return np.full(count, -1, dtype=np.int64)
    array = np.asarray(labels)
    if array.dtype.kind not in "uif":
        raise XaiError("labels must be integers, not dtype %s" % array.dtype)
    if array.ndim == 2 and array.shape[1] > 1 and np.isin(array, (0, 1)).all() and (array.sum(axis=1) == 1).all():
        array = array.argmax(axis=1)
    if array.ndim != 1 or len(array) != count:
        raise XaiError("labels must be one integer per image (%d), not shape %s" % (count, array.shape))
    if array.dtype.kind == "f" and not (np.isfinite(array).all() and (array == np.round(array)).all()):
        raise XaiError("labels must be whole numbers")
    array = array.astype(np.int64)
    limit = len(class_names) if class_names is not None else None
    if count and (array.min() < 0 or (limit is not None and array.max() >= limit)):
        raise XaiError(
            "labels must lie in 0..%s, found %d..%d" % (limit - 1 if limit else "", array.min(), array.max())
        )
    return array


def _check_ids(ids, count):
    """Sample ids as a unicode array [N] (default '0'..'N-1'); XaiError if not N unique strings or ints."""
    if ids is None:
        return np.array([str(i) for i in range(count)])
    ids = list(ids)
    if len(ids) != count or not all(isinstance(i, (str, int, np.integer)) for i in ids):
        raise XaiError("ids must be %d strings or integers, one per image" % count)
    ids = [str(i) for i in ids]
    if len(set(ids)) != count:
        raise XaiError("ids must be unique")
    return np.array(ids)


def prepare_samples(images, labels=None, class_names=None, ids=None):
    """Validate and normalize a sample set: SampleSet(images NHWC, labels int64, ids str, class_names)."""
    images = _check_images(images)
    if class_names is not None:
        class_names = _check_class_names(class_names, len(class_names), "class_names")
    labels = _check_labels(labels, len(images), class_names)
    return SampleSet(images, labels, _check_ids(ids, len(images)), class_names)


def samples(name, images, step=None, labels=None, class_names=None, ids=None, *, logdir=None):
    """Log a named set of sample images (with optional labels) for the XAI tab to explain.

    Arguments:
      name: the set's name, 1-64 of [A-Za-z0-9_.-]; logging the same name again replaces the set.
      images: [N, H, W, C] (C 1 or 3) or grayscale [N, H, W]; uint8 (or integers in 0..255) or float.
      step: the training step; defaults to `tf.summary.experimental.get_step()`.
      labels: N class indices (or one-hot rows), in range of class_names when given.
      class_names: the names the labels index.
      ids: N unique ids (strings or integers); default '0'..'N-1'.
      logdir: the run folder; needed only when the default writer was not made by `create_file_writer`.

    Returns:
      True if written, False if there is no default writer or `tf.summary.record_if` says not now.

    Raises:
      XaiError: for an invalid argument or an unwritable run folder; nothing is written then.
    """
    _check_eager()
    metadata.check_name(name)
    sample_set = prepare_samples(images, labels, class_names, ids)
    step = _step(step)
    if not _recording():
        return False
    run_dir = _run_dir(logdir)
    files.ensure_dir(files.samples_dir(run_dir))
    data_path, manifest_path = files.sample_paths(run_dir, name)
    arrays = {"images": sample_set.images, "labels": sample_set.labels, "ids": sample_set.ids}
    sha256 = files.write_stream(data_path, lambda stream: np.savez(stream, **arrays))
    images = sample_set.images
    manifest = {
        "format_version": metadata.FORMAT_VERSION,
        "kind": metadata.KIND_SAMPLES,
        "name": name,
        "step": step,
        "file": os.path.basename(data_path),
        "count": int(len(images)),
        "image_shape": [int(d) for d in images.shape[1:]],
        "dtype": str(images.dtype),
        "value_range": [float(images.min()), float(images.max())],
        "has_labels": bool(labels is not None),
        "class_names": sample_set.class_names,
        "sha256": sha256,
        "wall_time": time.time(),
    }
    _publish_manifest(manifest_path, manifest, data_path)
    index = {k: manifest[k] for k in ("name", "file", "count", "image_shape", "dtype", "has_labels", "sha256")}
    return _write_index(metadata.SAMPLES_TAG_PREFIX + name, index, step, metadata.KIND_SAMPLES)
