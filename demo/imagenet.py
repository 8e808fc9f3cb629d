"""The ImageNet demo: VGG16, ResNet50 and Xception with ImageNet weights, imported with `tb-xai import`.

    python demo/imagenet.py --logdir demo_logs-imagenet     # then: tensorboard --logdir demo_logs-imagenet

The images are the 20 labelled ImageNet photos that ship in the foolbox 3.3.4 wheel
(foolbox/data/imagenet_<i>_<label>.jpg), read out of the wheel, which is downloaded once with
`pip download --no-deps --require-hashes` (pin: demo/requirements-imagenet.txt) and never installed.
Or pass --images DIR with files named the same way.

Weights, per model: a file given by flag or environment variable (VGG16_WEIGHTS=..., the Keras
`*_weights_tf_dim_ordering_tf_kernels.h5` files), else Keras' cached download, else a download
where there is internet. With none of these the script says what to do and exits with status 2,
before anything is written.
"""

import argparse
import io
import os
import re
import socket
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PIN_FILE = os.path.join(HERE, "requirements-imagenet.txt")
WHEEL_PATTERN = re.compile(r"^foolbox-3\.3\.4-py3-none-any\.whl$")
IMAGE_PATTERN = re.compile(r"^imagenet_\d{2}_(\d{1,3})\.(?:jpe?g|png)$", re.IGNORECASE)  # group 1: the label
WHEEL_DATA = "foolbox/data/"
WEIGHTS_HOST = ("storage.googleapis.com", 443)
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/"
PROBE_TIMEOUT_S = 5
SAMPLES_NAME = "imagenet"


class App:
    """One Keras application of the demo: its run, its `tf.keras.applications` name, input size, weights file."""

    def __init__(self, run, keras_name, size, weights_file, folder):
        self.run = run
        self.keras_name = keras_name
        self.size = size
        self.weights_file = weights_file
        self.url = WEIGHTS_URL + folder + "/" + weights_file
        self.env = keras_name.upper() + "_WEIGHTS"


APPS = {
    "vgg16": App("vgg16", "VGG16", 224, "vgg16_weights_tf_dim_ordering_tf_kernels.h5", "vgg16"),
    "resnet50": App("resnet50", "ResNet50", 224, "resnet50_weights_tf_dim_ordering_tf_kernels.h5", "resnet"),
    "xception": App("xception", "Xception", 299, "xception_weights_tf_dim_ordering_tf_kernels.h5", "xception"),
}


class DemoError(Exception):
    """Something the user must fix; the message says what to do."""


def parse_args(argv):
    """The command line; weights flags default to the VGG16_WEIGHTS, RESNET50_WEIGHTS, XCEPTION_WEIGHTS variables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logdir", required=True, help="TensorBoard log directory to import the models into")
    parser.add_argument("--models", default=",".join(APPS), help="comma-separated subset of: " + ", ".join(APPS))
    parser.add_argument("--images", help="a folder of imagenet_<i>_<label>.jpg files instead of foolbox's")
    parser.add_argument("--cache-dir", help="where the foolbox wheel is kept (default: ~/.cache/tb-xai)")
    parser.add_argument("--class-names", help="ImageNet's 1000 class names, one per line (passed to tb-xai import)")
    parser.add_argument("--offline", action="store_true", help="never download weights; use files and Keras' cache only")
    for app in APPS.values():
        parser.add_argument("--%s-weights" % app.run, default=os.environ.get(app.env), metavar="PATH",
                            help="%s weights file (.h5); default $%s" % (app.keras_name, app.env))
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in APPS]
    if unknown or not args.models:
        parser.error("--models: unknown %s; choose from %s" % (", ".join(unknown) or "(none)", ", ".join(APPS)))
    return args


def keras_cache_file(app):
    """Where Keras keeps `app`'s downloaded ImageNet weights ($KERAS_HOME or ~/.keras, then models/)."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(keras_home, "models", app.weights_file)


def can_download():
    """True if Keras' weights host answers a TCP connection within PROBE_TIMEOUT_S."""
    try:
        socket.create_connection(WEIGHTS_HOST, timeout=PROBE_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def resolve_weights(apps, given, offline):
    """{run: value for `tb-xai import --weights`}: the given file, else 'imagenet' if cached or downloadable; else DemoError."""
    resolved, missing = {}, []
    online = None
    for app in apps:
        path = given.get(app.run)
        if path:
            if not os.path.isfile(path):
                raise DemoError("%s weights: no file at %s" % (app.keras_name, path))
            resolved[app.run] = os.path.abspath(path)
        elif os.path.isfile(keras_cache_file(app)):
            resolved[app.run] = "imagenet"
        else:
            online = (not offline and can_download()) if online is None else online
            if online:
                resolved[app.run] = "imagenet"
            else:
                missing.append(app)
    if missing:
        raise DemoError(
            "no ImageNet weights for %s: no file given, none in Keras' cache (%s), and %s. Download them "
            "where there is internet and point to them, e.g. `VGG16_WEIGHTS=/path/to/file make demo-imagenet`:\n%s"
            % (", ".join(a.keras_name for a in missing), os.path.dirname(keras_cache_file(missing[0])),
               "--offline was given" if offline else "%s:%d cannot be reached" % WEIGHTS_HOST,
               "\n".join("  %s=/path/to/%s   (from %s)" % (a.env, a.weights_file, a.url) for a in missing))
        )
    return resolved


def default_cache_dir():
    """$XDG_CACHE_HOME/tb-xai, or ~/.cache/tb-xai."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tb-xai")


def foolbox_wheel(cache_dir):
    """Path of the pinned foolbox wheel in `cache_dir`, downloaded there (hash-checked) if absent."""
    os.makedirs(cache_dir, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--require-hashes", "-r", PIN_FILE, "-d", cache_dir]
    if not any(WHEEL_PATTERN.match(name) for name in os.listdir(cache_dir)):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DemoError("cannot download the foolbox 3.3.4 wheel for its ImageNet photos (%s). Run `%s` where "
                            "there is internet, or pass --images DIR with files named imagenet_<i>_<label>.jpg"
                            % (result.stderr.strip().splitlines()[-1:] or "pip failed", " ".join(command)))
    names = [name for name in os.listdir(cache_dir) if WHEEL_PATTERN.match(name)]
    if not names:
        raise DemoError("pip did not leave the foolbox wheel in %s" % cache_dir)
    return os.path.join(cache_dir, names[0])


def images_in_wheel(wheel):
    """[(file name, label, bytes)] of the foolbox/data/imagenet_*.jpg members of `wheel`, in name order."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = {n[len(WHEEL_DATA):]: n for n in archive.namelist() if n.startswith(WHEEL_DATA)}
            found = [(name, archive.read(names[name])) for name in sorted(names) if IMAGE_PATTERN.match(name)]
    except (OSError, zipfile.BadZipFile) as e:
        raise DemoError("cannot read %s: %s (delete it to download it again)" % (wheel, e)) from e
    if not found:
        raise DemoError("%s holds no %simagenet_*.jpg" % (wheel, WHEEL_DATA))
    return [(name, int(IMAGE_PATTERN.match(name).group(1)), data) for name, data in found]


def images_in_folder(folder):
    """[(file name, label, bytes)] of the imagenet_<i>_<label>.jpg files in `folder`, in name order."""
    if not os.path.isdir(folder):
        raise DemoError("--images: no folder at %s" % folder)
    found = []
    for name in sorted(os.listdir(folder)):
        match = IMAGE_PATTERN.match(name)
        if match:
            with open(os.path.join(folder, name), "rb") as f:
                found.append((name, int(match.group(1)), f.read()))
    if not found:
        raise DemoError("%s has no files named imagenet_<i>_<label>.jpg" % folder)
    return found


def write_npz(path, photos, size):
    """Write `photos` resized to size x size RGB uint8 as an .npz (images, labels, ids) for `tb-xai import`."""
    from PIL import Image

    images = []
    for name, _, data in photos:
        try:
            with Image.open(io.BytesIO(data)) as image:
                images.append(np.asarray(image.convert("RGB").resize((size, size), Image.BILINEAR), np.uint8))
        except OSError as e:
            raise DemoError("cannot decode %s: %s" % (name, e)) from e
    labels = np.array([label for _, label, _ in photos], np.int64)
    if labels.max() >= 1000:
        raise DemoError("an ImageNet label must be below 1000: %s" % labels.max())
    ids = np.array([name for name, _, _ in photos])
    np.savez(path, images=np.stack(images), labels=labels, ids=ids)


def import_command(app, weights, npz, args):
    """The `tb-xai import` command line that logs `app` with `weights` and the photos in `npz`."""
    command = [sys.executable, "-m", "tb_xai_plugin.cli", "import", "--logdir", args.logdir, "--run", app.run,
               "--keras-app", app.keras_name, "--weights", weights, "--images", npz,
               "--samples-name", SAMPLES_NAME]
    if args.class_names:
        command += ["--class-names", args.class_names]
    return command


def main(argv=None):
    """Check weights and photos, then run `tb-xai import` per model; 0 on success, 2 with a message otherwise."""
    args = parse_args(argv)
    apps = [APPS[name] for name in args.models]
    try:
        weights = resolve_weights(apps, {run: getattr(args, run + "_weights") for run in APPS}, args.offline)
        if args.images:
            photos = images_in_folder(args.images)
        else:
            photos = images_in_wheel(foolbox_wheel(args.cache_dir or default_cache_dir()))
        with tempfile.TemporaryDirectory() as temp:
            for app in apps:
                npz = os.path.join(temp, "photos-%d.npz" % app.size)
                if not os.path.exists(npz):
                    write_npz(npz, photos, app.size)
                command = import_command(app, weights[app.run], npz, args)
                print("demo: tb-xai %s" % " ".join(command[3:]), flush=True)
                if subprocess.run(command, check=False).returncode != 0:
                    raise DemoError("tb-xai import failed for %s (its message is above)" % app.keras_name)
    except DemoError as e:
        print("demo: %s" % e, file=sys.stderr)
        return 2
    print("demo: done. Now: tensorboard --logdir %s" % args.logdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
