"""`tb-xai import`: saved models (.h5, .keras), a Keras application, image folders and .npz files."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from summary_helpers import FORMAT, KERAS3, multiplexer_provider, tiny_cnn, xai_tensors
from tb_xai_plugin import cli, files, metadata, model_info

OFFLINE = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}  # nothing listens on port 9


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny CNN saved as .h5 and as .keras, and its weights checksum."""
    folder = tmp_path_factory.mktemp("models")
    model = tiny_cnn(classes=3)
    model.save(str(folder / "cnn.h5"))
    model.save(str(folder / "cnn.keras"))
    return folder, model_info.weights_checksum(model.get_weights()), model


def _image_folder(root, classes, size=(30, 40)):
    """root/<class>/<i>.png: two RGB images per class, of another size than the model's input."""
    rng = np.random.default_rng(0)
    for cls in classes:
        os.makedirs(root / cls)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, size + (3,), dtype=np.uint8)).save(root / cls / ("%d.png" % i))
    return str(root)


def _only_checkpoint(run_dir):
    """The one checkpoint manifest of a run."""
    (manifest,) = files.checkpoint_manifests(run_dir)
    return manifest


def test_h5_with_an_image_folder_through_the_console_script(tmp_path, saved):
    folder, checksum, _ = saved
    images = _image_folder(tmp_path / "images", ["0", "2"])
    logdir = tmp_path / "logs"
    script = os.path.join(os.path.dirname(sys.executable), "tb-xai")
    result = subprocess.run(
        [script, "import", "--logdir", str(logdir), "--run", "sweep/cnn", "--model", str(folder / "cnn.h5"),
         "--images", images, "--step", "5", "--samples-name", "photos"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run_dir = str(logdir / "sweep" / "cnn")
    manifest = _only_checkpoint(run_dir)
    assert manifest["step"] == 5 and manifest["weights_sha256"] == checksum and manifest["format"] == FORMAT
    (sample_set,) = files.sample_manifests(run_dir)
    assert sample_set["name"] == "photos" and sample_set["count"] == 4 and sample_set["image_shape"] == [28, 28, 1]
    assert sample_set["class_names"] == ["0", "1", "2"]  # folders named like the model's classes keep its indices
    with np.load(files.sample_paths(run_dir, "photos")[0]) as data:
        np.testing.assert_array_equal(data["labels"], [0, 0, 2, 2])
        assert data["ids"].tolist() == ["0/0.png", "0/1.png", "2/0.png", "2/1.png"]
        assert data["images"].dtype == np.uint8
    tensors = xai_tensors(multiplexer_provider(str(logdir)))
    assert sorted(tensors["sweep/cnn"]) == [metadata.CHECKPOINT_TAG, metadata.SAMPLES_TAG_PREFIX + "photos"]


def test_keras_file_with_an_npz(tmp_path, saved):
    folder, checksum, model = saved
    rng = np.random.default_rng(0)
    images = rng.random((5, 28, 28), dtype=np.float32)
    np.savez(tmp_path / "val.npz", images=images, labels=np.array([0, 1, 2, 1, 0]))
    code = cli.main(["import", "--logdir", str(tmp_path / "logs"), "--run", "cnn", "--model", str(folder / "cnn.keras"),
                     "--images", str(tmp_path / "val.npz"), "--preprocessing", '{"type": "scale", "scale": 0.5}'])
    assert code == 0
    run_dir = str(tmp_path / "logs" / "cnn")
    manifest = _only_checkpoint(run_dir)
    assert manifest["format"] == FORMAT and manifest["weights_sha256"] == checksum
    assert manifest["preprocessing"] == {"type": "scale", "scale": 0.5, "offset": 0.0}
    loaded = tf.keras.models.load_model(os.path.join(files.checkpoints_dir(run_dir), manifest["file"]), compile=False)
    np.testing.assert_allclose(loaded(images[..., None]).numpy(), model(images[..., None]).numpy(), rtol=1e-5, atol=1e-6)
    (sample_set,) = files.sample_manifests(run_dir)
    assert sample_set["count"] == 5 and sample_set["has_labels"] and sample_set["dtype"] == "float32"


@pytest.mark.stack("keras2")  # Keras 3 neither saves nor loads a SavedModel as a model (next test)
def test_savedmodel_folder_becomes_h5(tmp_path, saved):
    _, checksum, model = saved
    model.save(str(tmp_path / "sm"), save_format="tf")
    assert cli.main(["import", "--logdir", str(tmp_path / "logs"), "--run", "r", "--model", str(tmp_path / "sm")]) == 0
    manifest = _only_checkpoint(str(tmp_path / "logs" / "r"))
    assert manifest["format"] == "h5" and manifest["weights_sha256"] == checksum


@pytest.mark.stack("keras3")  # Keras 2 imports a SavedModel folder (previous test)
def test_savedmodel_folder_is_refused_in_keras3_with_what_to_do(tmp_path, saved, capsys):
    _, _, model = saved
    model.export(str(tmp_path / "sm"))
    assert cli.main(["import", "--logdir", str(tmp_path / "logs"), "--run", "r", "--model", str(tmp_path / "sm")]) == 2
    assert "Keras 3 cannot load as a model: save the model as .keras" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "logs")


def test_folders_with_other_names_are_classes_in_sorted_order(tmp_path, saved):
    folder, _, _ = saved
    images = _image_folder(tmp_path / "images", ["dog", "cat"])
    assert cli.main(["import", "--logdir", str(tmp_path), "--run", "r", "--model", str(folder / "cnn.h5"), "--images", images]) == 0
    (sample_set,) = files.sample_manifests(str(tmp_path / "r"))
    assert sample_set["class_names"] == ["cat", "dog"]


def test_keras_app_with_class_names_file(tmp_path):
    names = tmp_path / "names.txt"
    names.write_text("\n".join("n%d" % i for i in range(1000)))
    code = cli.main(["import", "--logdir", str(tmp_path), "--run", "mnv2", "--keras-app", "MobileNetV2",
                     "--weights", "none", "--input-size", "32", "32", "--class-names", str(names)])
    assert code == 0
    manifest = _only_checkpoint(str(tmp_path / "mnv2"))
    assert manifest["preprocessing"] == {"type": "keras_app", "module": "mobilenet_v2"}
    assert manifest["input_shape"] == [32, 32, 3] and manifest["num_classes"] == 1000
    assert manifest["class_names"][:2] == ["n0", "n1"] and manifest["model_name"].startswith("mobilenetv2")


def test_imagenet_names_fall_back_offline(monkeypatch):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("HOME", "/nonexistent-home")  # no cached class index
    assert cli.imagenet_class_names() is None
    args = cli._parser().parse_args(["import", "--logdir", "l", "--run", "r", "--keras-app", "VGG16"])
    assert cli._class_names(args)[999] == "class 999"


def test_app_module_names():
    assert [cli.app_module(n) for n in ("VGG16", "ResNet50", "Xception", "MobileNetV2", "EfficientNetB0")] == [
        "vgg16", "resnet", "xception", "mobilenet_v2", "efficientnet"
    ]


def test_imagenet_weights_offline_says_how_to_pass_a_file(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tb_xai_plugin.cli", "import", "--logdir", str(tmp_path / "logs"), "--run", "m",
         "--keras-app", "MobileNetV2", "--weights", "imagenet"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, HOME=str(tmp_path), **OFFLINE),
    )
    assert result.returncode == 2
    assert "cannot download the ImageNet weights of MobileNetV2" in result.stderr and "--weights PATH" in result.stderr
    assert not os.path.exists(tmp_path / "logs")


def _lambda_model(path, save_format=None):
    """Save a model with a Lambda layer (code that would run on load) to `path` (format from its suffix, or 'tf')."""
    inputs = tf.keras.Input((4, 4, 1))
    x = tf.keras.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    kwargs = {"save_format": save_format} if save_format else {}
    tf.keras.Model(inputs, tf.keras.layers.Dense(2)(tf.keras.layers.Flatten()(x))).save(path, **kwargs)
    return path


LAMBDA_SAVEDMODEL = [] if KERAS3 else [  # Keras 3 cannot save a SavedModel that keeps the layers
    (lambda t, m: ["--model", _lambda_model(str(t / "lambda_sm"), "tf")], "is a Lambda layer")
]


def _bad_npz(tmp_path, **arrays):
    """An .npz with the given arrays."""
    np.savez(tmp_path / "bad.npz", **arrays)
    return str(tmp_path / "bad.npz")


@pytest.mark.parametrize(
    "extra, message",
    [
        (lambda t, m: ["--keras-app", "VGG17"], "unknown Keras application 'VGG17'"),
        (lambda t, m: ["--keras-app", "imagenet_utils"], "unknown Keras application"),
        (lambda t, m: ["--keras-app", "VGG16", "--weights", "/no/such.h5"], "--weights must be imagenet, none"),
        (lambda t, m: ["--model", str(t / "missing.h5")], "no model at"),
        (lambda t, m: ["--model", str(m / "cnn.h5"), "--run", "../outside"], "invalid run name"),
        (lambda t, m: ["--model", str(m / "cnn.h5"), "--run", "/abs"], "invalid run name"),
        (lambda t, m: ["--model", str(m / "cnn.h5"), "--samples-name", "a b"], "invalid name"),
        (lambda t, m: ["--model", str(m / "cnn.h5"), "--step", "-1"], "--step must be >= 0"),
        (lambda t, m: ["--model", _lambda_model(str(t / "lambda.h5"))], "is a Lambda layer"),
        (lambda t, m: ["--model", _lambda_model(str(t / "lambda.keras"))], "is a Lambda layer"),
        (lambda t, m: ["--model", str(m / "cnn.h5"), "--preprocessing", "{oops"], "not JSON"),
        (lambda t, m: ["--model", str(m / "cnn.h5"), "--images", str(t)], "no class subfolders"),
        (lambda t, m: ["--model", str(m / "cnn.h5"), "--images", str(m / "cnn.h5")], "folder of class subfolders or an .npz"),
        (lambda t, m: ["--model", str(m / "cnn.h5"), "--images", _bad_npz(t, images=np.full((2, 28, 28, 1), np.nan))], "NaN"),
        (lambda t, m: ["--model", str(m / "cnn.h5"), "--images", _bad_npz(t, images=np.zeros((2, 9, 9, 1)))], "the model takes"),
        (lambda t, m: ["--model", str(m / "cnn.h5"), "--images", _bad_npz(t, pictures=np.zeros(2))], "no 'images' array"),
        (
            lambda t, m: ["--model", str(m / "cnn.h5"), "--images", _bad_npz(t, images=np.zeros((2, 28, 28)), labels=np.array([0, 7]))],
            "labels must lie in 0..2",
        ),
    ]
    + LAMBDA_SAVEDMODEL,
)
def test_bad_input_writes_nothing(tmp_path, saved, capsys, extra, message):
    args = extra(tmp_path, saved[0])
    argv = ["import", "--logdir", str(tmp_path / "logs"), "--run", "r"] + args
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "logs")


def test_unreadable_model_file_and_wrong_class_count(tmp_path, saved, capsys):
    (tmp_path / "fake.h5").write_text("not hdf5")
    (tmp_path / "names.txt").write_text("a\nb\n")
    logdir = str(tmp_path / "logs")
    assert cli.main(["import", "--logdir", logdir, "--run", "r", "--model", str(tmp_path / "fake.h5")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert cli.main(["import", "--logdir", logdir, "--run", "r", "--model", str(saved[0] / "cnn.h5"),
                     "--class-names", str(tmp_path / "names.txt")]) == 2
    assert "has 3 classes but 2 class_names" in capsys.readouterr().err
    assert not os.path.exists(logdir)


def test_lambda_model_loads_with_allow_unsafe(tmp_path):
    path = _lambda_model(str(tmp_path / "lambda.h5"))
    assert cli.main(["import", "--logdir", str(tmp_path / "logs"), "--run", "r", "--model", path, "--allow-unsafe"]) == 0
    assert _only_checkpoint(str(tmp_path / "logs" / "r"))["layers"][1]["type"] == "Lambda"


def test_unwritable_logdir(tmp_path, saved, capsys):
    (tmp_path / "file").write_text("x")
    assert cli.main(["import", "--logdir", str(tmp_path / "file"), "--run", "r", "--model", str(saved[0] / "cnn.h5")]) == 2
    assert "cannot write to" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "x"
