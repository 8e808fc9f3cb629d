"""The `tb-xai` command. `tb-xai import` logs a saved model or a Keras application (and optionally a
sample set) into a run, so models trained elsewhere can be explained beside logged ones.
`tb-xai prune` applies a retention policy to a logdir (retention.py, docs/logging.md); `tb-xai
precompute` runs the Apache Beam pipeline that fills the runs' result stores (docs/precompute.md).

    tb-xai import --logdir logs --run vgg --keras-app VGG16 --weights imagenet --images photos/
    tb-xai import --logdir logs --run cnn --model cnn.h5 --images val.npz --step 3

Models load eagerly with `compile=False`. Before Keras loads a model, `safety.check_file` reads its
config (.h5, .keras or SavedModel) and refuses a layer holding Python code (a Lambda, at any depth)
unless `--allow-unsafe` is given, and a layer of a class it does not know always (Keras' own
`safe_mode` covers only .keras); the checkpoint it logs lists the code layers allowed.
A Keras application records `{"type": "keras_app", "module": ...}` as its preprocessing and
ImageNet's class names: from `--class-names` when given, else from Keras' class index (downloaded,
or cached in ~/.keras), else "class 0".."class 999" with a warning. TensorFlow is imported only when needed.
Everything is checked before anything is written, so a bad argument leaves the logdir as it was.
"""

import argparse
import json
import os
import socket
import sys
import zipfile

import numpy as np

from tb_xai_plugin import keras2_config, metadata, safety
from tb_xai_plugin.errors import XaiError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
IMAGENET_CLASSES = 1000
DOWNLOAD_TIMEOUT_S = 10  # for the small class index; a stalled network must not hang the import


def _parser():
    """The argparse parser of `tb-xai` and its `import` subcommand."""
    parser = argparse.ArgumentParser(prog="tb-xai", description="tb-xai: explain image classifiers in TensorBoard")
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser("import", help="log a saved model or a Keras application (and samples) into a run")
    imp.add_argument("--logdir", required=True, help="TensorBoard's --logdir")
    imp.add_argument("--run", required=True, help="the run's name: a folder inside the logdir, e.g. 'vgg' or 'sweep/lr1'")
    source = imp.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a saved model: .h5 file, .keras file or SavedModel folder")
    source.add_argument("--keras-app", help="a tf.keras.applications name, e.g. VGG16, ResNet50, MobileNetV2")
    imp.add_argument("--weights", default="imagenet", help="for --keras-app: imagenet, none, or a weights file")
    imp.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"), help="for --keras-app: input size (default: the application's)")
    imp.add_argument("--class-names", help="a file of class names, one per line (or a JSON list); for --keras-app it replaces "
                     "ImageNet's class index, which Keras downloads")
    imp.add_argument("--preprocessing", help='JSON, e.g. \'{"type": "scale", "scale": 0.00392, "offset": 0}\'')
    imp.add_argument("--images", help="a folder with one subfolder of images per class, or an .npz (images, labels)")
    imp.add_argument("--samples-name", default="validation", help="the sample set's name (default validation)")
    imp.add_argument("--step", type=int, default=0, help="the checkpoint's step (default 0)")
    imp.add_argument("--allow-unsafe", action="store_true", help="allow models whose config holds code (a Lambda layer); the checkpoint is marked, and TensorBoard "
                     "loads it only with --xai_allow_unsafe_models")
    prune = commands.add_parser("prune", help="delete a logdir's checkpoints that a retention policy does not keep")
    prune.add_argument("--logdir", required=True, help="TensorBoard's --logdir (every run below it)")
    prune.add_argument("--keep-last", type=int, required=True, metavar="N", help="keep each run's last N checkpoints")
    prune.add_argument("--keep-every", type=int, metavar="K", help="also keep the checkpoints whose step is a multiple of K")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be deleted")
    pre = commands.add_parser(
        "precompute", help="compute maps, predictions and suggestion statistics with Apache Beam into the runs' result stores",
        epilog="Other arguments go to Beam's PipelineOptions, e.g. --runner DataflowRunner --project P --region R "
        "--temp_location gs://... (see docs/precompute.md)",
    )  # fmt: skip
    pre.add_argument("--logdir", required=True, help="TensorBoard's --logdir")
    pre.add_argument("--runs", nargs="+", help="run names (default: every run with checkpoints)")
    pre.add_argument("--methods", nargs="*", default=[], help="method ids, e.g. gradient lrp.epsilon (default: predictions only)")
    pre.add_argument("--params", help='JSON {method id: params}, e.g. \'{"integrated_gradients": {"steps": 32}}\' (default: each method\'s defaults)')
    pre.add_argument("--steps", nargs="+", type=int, help="checkpoint steps (default: all)")
    pre.add_argument("--samples", default="validation", metavar="NAME", help="the sample set's name (default validation)")
    pre.add_argument("--samples-run", help="the run holding the sample set (default: each model's own run)")
    pre.add_argument("--target", default="predicted", help="predicted, label, or a class index (default predicted)")
    pre.add_argument("--layer", help="a layer for the methods that take one, and for the suggestions' activation histogram")
    pre.add_argument("--neuron", type=int, help="a channel of --layer")
    pre.add_argument("--seed", type=int, default=0, help="seed of the sampling methods (default 0, as the tab)")
    pre.add_argument("--allow-unsafe", action="store_true", help="load checkpoints marked unsafe (as --xai_allow_unsafe_models)")
    pre.add_argument("--runner", default="DirectRunner", help="Beam runner: DirectRunner (default), DataflowRunner, FlinkRunner, SparkRunner")
    return parser


def check_run_name(run):
    """`run` if it is a relative path of plain names (no '..', not absolute), else XaiError."""
    parts = run.replace("\\", "/").split("/")
    if not run or run.startswith("/") or not all(metadata.NAME_PATTERN.match(p) and ".." not in p for p in parts):
        raise XaiError("invalid run name %r: use names of letters, digits, '_', '-', '.' joined by '/'" % run)
    return run


def read_class_names(path):
    """Class names from a file: a JSON list of strings, or one name per line."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise XaiError("cannot read class names from %s: %s" % (path, e)) from e
    try:
        names = json.loads(text)
    except ValueError:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise XaiError("%s must hold a JSON list of strings or one class name per line" % path)
    return names


def model_format(path):
    """The safety module's format of the saved model at `path`: "savedmodel", "keras" (a zip) or "h5"."""
    import h5py

    if os.path.isdir(path):
        return "savedmodel"
    if zipfile.is_zipfile(path):
        return "keras"
    if h5py.is_hdf5(path):
        return "h5"
    raise XaiError("cannot read %s as a saved model: not a SavedModel folder, .keras or .h5 file" % path)


def load_model(path, allow_unsafe=False):
    """Load a saved model (.h5, .keras, SavedModel folder) without compiling; XaiError if unusable or unsafe."""
    import tensorflow as tf

    if not os.path.exists(path):
        raise XaiError("no model at %s" % path)
    fmt = model_format(path)
    keras3 = getattr(tf.keras, "__version__", "2").startswith("3")  # Keras 2's tf.keras has no __version__
    if keras3 and fmt == "savedmodel":
        raise XaiError("%s is a SavedModel folder, which Keras 3 cannot load as a model: save the model as .keras "
                       "(model.save('m.keras')) or .h5, or import it in the Keras 2 stack" % path)
    try:
        safety.check_file(path, fmt, allow_unsafe)
    except XaiError as e:
        raise XaiError("%s: %s" % (path, str(e).replace("TensorBoard's --xai_allow_unsafe_models", "--allow-unsafe"))) from e
    kwargs = {"safe_mode": not allow_unsafe} if fmt == "keras" or keras3 else {}  # Keras 3 guards Lambdas in .h5 too
    try:
        if keras3 and fmt == "h5":  # a Keras 2 config is translated first (tb_xai_plugin.keras2_config)
            return keras2_config.load_h5(path, allow_unsafe)
        return tf.keras.models.load_model(path, compile=False, **kwargs)
    except Exception as e:  # noqa: BLE001 - Keras raises many types for a file it cannot load
        raise XaiError("cannot load model %s: %s" % (path, e)) from e


def app_module(name):
    """The tf.keras.applications submodule of application `name` (e.g. 'vgg16' for VGG16)."""
    import tensorflow as tf

    builder = getattr(tf.keras.applications, name, None) if name[:1].isupper() else None
    module = getattr(builder, "__module__", "").rsplit(".", 1)[-1]
    if not callable(builder) or not hasattr(getattr(tf.keras.applications, module, None), "preprocess_input"):
        known = sorted(n for n in dir(tf.keras.applications) if n[:1].isupper())
        raise XaiError("unknown Keras application %r; known: %s" % (name, ", ".join(known)))
    return module


def build_keras_app(name, weights, input_size=None):
    """(model, preprocessing) for tf.keras.applications `name` with weights 'imagenet', 'none' or a file."""
    import tensorflow as tf

    module = app_module(name)
    if weights not in ("imagenet", "none") and not os.path.isfile(weights):
        raise XaiError("--weights must be imagenet, none or an existing weights file, not %r" % weights)
    kwargs = {"weights": None if weights == "none" else weights, "classes": IMAGENET_CLASSES}
    if input_size:
        kwargs["input_shape"] = (input_size[0], input_size[1], 3)
    try:
        model = getattr(tf.keras.applications, name)(**kwargs)
    except Exception as e:  # noqa: BLE001 - a download or a shape check failed inside Keras
        if weights == "imagenet" and "URL fetch failure" in str(e):
            raise XaiError("cannot download the ImageNet weights of %s (%s): download the weights file on a machine "
                           "with internet and pass --weights PATH" % (name, e)) from e
        raise XaiError("cannot build %s: %s" % (name, e)) from e
    return model, {"type": "keras_app", "module": module}


def imagenet_class_names():
    """The 1000 ImageNet class names from Keras' class index, or None if it cannot be fetched (offline)."""
    import tensorflow as tf
    from tensorflow.keras.applications import imagenet_utils

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        path = tf.keras.utils.get_file("imagenet_class_index.json", imagenet_utils.CLASS_INDEX_PATH, cache_subdir="models")
        with open(path, encoding="utf-8") as f:
            index = json.load(f)
    except Exception:  # noqa: BLE001 - offline or a broken cache: the caller falls back
        return None
    finally:
        socket.setdefaulttimeout(previous)
    return [index[str(i)][1] for i in range(IMAGENET_CLASSES)]


def _class_names(args):
    """Class names: --class-names file, else ImageNet's for a Keras app, else None (the default 0..K-1)."""
    if args.class_names:
        return read_class_names(args.class_names)
    if args.keras_app:
        names = imagenet_class_names()
        if names is None:
            print("tb-xai: the ImageNet class index cannot be fetched (offline?); naming classes 'class 0'.."
                  "'class 999'. Pass --class-names FILE to name them.", file=sys.stderr)
            names = ["class %d" % i for i in range(IMAGENET_CLASSES)]
        return names
    return None


def _image_size(model):
    """(H, W, C) of the model's input."""
    return tuple(int(d) for d in model.input_shape[1:])


def load_image(path, size):
    """An image file resized with PIL to (H, W, C) = `size` (C 1: grayscale, 3: RGB), as uint8."""
    from PIL import Image

    height, width, channels = size
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except OSError as e:
        raise XaiError("cannot read image %s: %s" % (path, e)) from e
    return array.reshape(size)


def load_image_folder(folder, size, model_class_names):
    """(images, labels, class_names, ids) from one subfolder of images per class.

    Folders named like the model's classes get those indices; otherwise classes are the folder
    names in sorted order (Keras' image_dataset_from_directory convention).
    """
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    if not classes:
        raise XaiError("%s has no class subfolders" % folder)
    if model_class_names and set(classes) <= set(model_class_names):
        class_names, index = list(model_class_names), {c: model_class_names.index(c) for c in classes}
    else:
        class_names, index = classes, {c: i for i, c in enumerate(classes)}
    images, labels, ids = [], [], []
    for cls in classes:
        for name in sorted(os.listdir(os.path.join(folder, cls))):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                images.append(load_image(os.path.join(folder, cls, name), size))
                labels.append(index[cls])
                ids.append("%s/%s" % (cls, name))
    if not images:
        raise XaiError("%s has no images (%s) in its class subfolders" % (folder, ", ".join(IMAGE_EXTENSIONS)))
    return np.stack(images), np.array(labels), class_names, ids


def load_npz(path, size):
    """(images, labels or None, ids or None) from an .npz with keys images and optionally labels, ids."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in ("images", "labels", "ids") if k in data.files}
    except (OSError, ValueError) as e:
        raise XaiError("cannot read %s as an .npz of images: %s" % (path, e)) from e
    if "images" not in arrays:
        raise XaiError("%s has no 'images' array" % path)
    images = arrays["images"]
    if images.ndim == 3 and size[2] == 1:
        images = images[..., np.newaxis]
    if tuple(images.shape[1:]) != tuple(size):
        raise XaiError("images in %s are %s, the model takes %s" % (path, images.shape[1:], size))
    ids = arrays.get("ids")
    return images, arrays.get("labels"), None if ids is None else ids.tolist()


def _load_samples(args, model, class_names):
    """The prepared sample set named by --images, or None."""
    from tb_xai_plugin import summary

    if not args.images:
        return None
    size = _image_size(model)
    if os.path.isdir(args.images):
        images, labels, names, ids = load_image_folder(args.images, size, class_names)
    elif args.images.endswith(".npz") and os.path.isfile(args.images):
        (images, labels, ids), names = load_npz(args.images, size), class_names
    else:
        raise XaiError("--images must be a folder of class subfolders or an .npz file: %s" % args.images)
    return summary.prepare_samples(images, labels, names, ids), labels is not None


def run_import(args):
    """Validate everything, then log the model (and samples) into <logdir>/<run> at --step."""
    from tb_xai_plugin import summary

    run_dir = os.path.join(args.logdir, check_run_name(args.run))
    metadata.check_name(args.samples_name)
    if args.step < 0:
        raise XaiError("--step must be >= 0")
    if args.keras_app:
        model, preprocessing = build_keras_app(args.keras_app, args.weights, args.input_size)
    else:
        model, preprocessing = load_model(args.model, args.allow_unsafe), None
    if args.preprocessing:
        try:
            preprocessing = json.loads(args.preprocessing)
        except ValueError as e:
            raise XaiError("--preprocessing is not JSON: %s" % e) from e
    fields = summary.describe_model(model, _class_names(args), preprocessing)
    prepared = _load_samples(args, model, fields["class_names"])
    writer = summary.create_file_writer(run_dir)
    try:
        with writer.as_default(step=args.step):
            summary.checkpoint(model, class_names=fields["class_names"], preprocessing=fields["preprocessing"],
                               allow_unsafe=args.allow_unsafe)
            if prepared is not None:
                (images, labels, ids, names), has_labels = prepared
                summary.samples(args.samples_name, images, labels=labels if has_labels else None, class_names=names, ids=ids)
    finally:
        writer.close()
    print("tb-xai: logged %s (step %d) into %s" % (fields["model_name"], args.step, run_dir))


def run_prune(args):
    """`tb-xai prune`: apply a retention policy to every run of the logdir, printing what goes (or would go)."""
    from tb_xai_plugin import retention

    policy = retention.Policy(args.keep_last, args.keep_every)
    runs = retention.run_dirs(args.logdir)
    if not runs:
        raise XaiError("no checkpoints under %s" % args.logdir)
    for run_dir in runs:
        deleted = retention.apply(run_dir, policy, dry_run=args.dry_run)
        kept = [m["step"] for m in _checkpoint_manifests(run_dir) if m["step"] not in deleted]
        print("tb-xai: %s: %s steps %s, keeps %s" % (run_dir, "would delete" if args.dry_run else "deleted", deleted or "none", kept))


def _checkpoint_manifests(run_dir):
    """The manifests of a run's checkpoints (files.checkpoint_manifests, imported late: it imports TensorFlow)."""
    from tb_xai_plugin import files

    return files.checkpoint_manifests(run_dir)


def _target(text):
    """A POST body's target from --target: predicted, label, or a class index."""
    if text in ("predicted", "label"):
        return {"kind": text}
    if text.isdigit():
        return {"kind": "class", "index": int(text)}
    raise XaiError("--target must be predicted, label or a class index, not %r" % text)


def run_precompute(args, pipeline_args):
    """`tb-xai precompute`: plan the items, run the Beam pipeline, print its counters."""
    from tb_xai_plugin.precompute import pipeline, plan

    try:
        params = json.loads(args.params) if args.params else {}
    except ValueError as e:
        raise XaiError("--params is not JSON: %s" % e) from e
    if not isinstance(params, dict):
        raise XaiError("--params must be a JSON object {method id: params}")
    items = plan.plan(
        args.logdir, runs=args.runs, methods=args.methods, steps=args.steps, samples=args.samples, samples_run=args.samples_run,
        target=_target(args.target), layer=args.layer, neuron=args.neuron, seed=args.seed, params=params,
    )  # fmt: skip
    if not items:
        raise XaiError("nothing to precompute: no checkpoints under %s" % args.logdir)
    options = {"allow_unsafe": args.allow_unsafe}
    totals = pipeline.run(args.logdir, plan.run_names(args.logdir), items, ["--runner", args.runner] + pipeline_args, options)
    print("tb-xai: precompute: %(items)d items, %(written)d results written, %(stored)d already stored, %(failed)d failed" % totals)
    if totals["failed"]:
        print("tb-xai: the failures are in the workers' logs (e.g. a method that does not apply to a model)", file=sys.stderr)


def main(argv=None):
    """Entry point of `tb-xai`; returns the exit status (0 ok, 2 bad input)."""
    args, extra = _parser().parse_known_args(argv)
    if extra and args.command != "precompute":
        _parser().parse_args(argv)  # exits with argparse's message about the unknown arguments
    try:
        if args.command == "import":
            run_import(args)
        elif args.command == "prune":
            run_prune(args)
        elif args.command == "precompute":
            run_precompute(args, extra)
    except XaiError as e:
        print("tb-xai: error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
