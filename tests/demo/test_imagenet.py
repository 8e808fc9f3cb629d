"""demo/imagenet.py: weights resolution, the photos out of the foolbox wheel, and one real `tb-xai import`."""

import io
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from demo import imagenet
from tb_xai_plugin import cli, files, metadata, model_info

LABELS = (243, 559, 438)


def _jpeg_bytes(seed, size=64):
    """The bytes of a small random RGB JPEG."""
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


@pytest.fixture
def no_weights(monkeypatch, tmp_path):
    """No weights anywhere: the environment variables unset and an empty Keras cache."""
    for app in imagenet.APPS.values():
        monkeypatch.delenv(app.env, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))


@pytest.fixture
def photo_folder(tmp_path):
    """A folder of three JPEGs named like foolbox's, and a file that is not one of them."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, label in enumerate(LABELS):
        (folder / ("imagenet_%02d_%d.jpg" % (i, label))).write_bytes(_jpeg_bytes(i))
    (folder / "notes.txt").write_text("not a photo")
    return folder


def test_without_weights_it_says_what_to_do_and_writes_nothing(no_weights, tmp_path, capsys):
    logdir = tmp_path / "logs"
    assert imagenet.main(["--logdir", str(logdir), "--offline"]) == 2
    err = capsys.readouterr().err
    for app in imagenet.APPS.values():
        assert "%s=/path/to/%s" % (app.env, app.weights_file) in err
        assert app.url in err
    assert not logdir.exists()


def test_a_missing_weights_file_is_named(no_weights, tmp_path, capsys):
    missing = str(tmp_path / "nowhere.h5")
    assert imagenet.main(["--logdir", str(tmp_path / "logs"), "--models", "vgg16", "--vgg16-weights", missing]) == 2
    assert missing in capsys.readouterr().err


def test_weights_come_from_the_environment_then_the_keras_cache(no_weights, monkeypatch, tmp_path):
    given = tmp_path / "vgg.h5"
    given.write_bytes(b"x")
    monkeypatch.setenv("VGG16_WEIGHTS", str(given))
    cached = imagenet.keras_cache_file(imagenet.APPS["resnet50"])
    os.makedirs(os.path.dirname(cached))
    open(cached, "wb").close()
    args = imagenet.parse_args(["--logdir", "l", "--models", "vgg16,resnet50", "--offline"])
    given_paths = {run: getattr(args, run + "_weights") for run in imagenet.APPS}
    resolved = imagenet.resolve_weights([imagenet.APPS["vgg16"], imagenet.APPS["resnet50"]], given_paths, True)
    assert resolved == {"vgg16": str(given), "resnet50": "imagenet"}


def test_photos_come_out_of_the_wheel_with_their_labels_and_nothing_else(tmp_path):
    wheel = tmp_path / "foolbox-3.3.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("foolbox/data/imagenet_01_559.jpg", _jpeg_bytes(1))
        archive.writestr("foolbox/data/imagenet_00_243.jpg", _jpeg_bytes(0))
        archive.writestr("foolbox/data/mnist_00_7.png", b"not imagenet")
        archive.writestr("../foolbox/data/imagenet_02_438.jpg", b"outside the data folder")
        archive.writestr("foolbox/__init__.py", "")
    assert imagenet.foolbox_wheel(str(tmp_path)) == str(wheel)  # present: no download
    photos = imagenet.images_in_wheel(str(wheel))
    assert [(name, label) for name, label, _ in photos] == [("imagenet_00_243.jpg", 243), ("imagenet_01_559.jpg", 559)]
    assert photos[0][2] == _jpeg_bytes(0)


def test_a_corrupt_wheel_is_a_clear_error(tmp_path):
    wheel = tmp_path / "foolbox-3.3.4-py3-none-any.whl"
    wheel.write_bytes(b"not a zip")
    with pytest.raises(imagenet.DemoError, match="delete it"):
        imagenet.images_in_wheel(str(wheel))


def test_the_npz_is_what_tb_xai_import_reads(photo_folder, tmp_path):
    photos = imagenet.images_in_folder(str(photo_folder))
    path = str(tmp_path / "photos.npz")
    imagenet.write_npz(path, photos, 32)
    images, labels, ids = cli.load_npz(path, (32, 32, 3))
    assert images.shape == (3, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == list(LABELS)
    assert ids == ["imagenet_%02d_%d.jpg" % (i, label) for i, label in enumerate(LABELS)]


def test_import_logs_the_model_with_the_given_weights_and_the_photos(no_weights, photo_folder, tmp_path):
    import tensorflow as tf

    weights = str(tmp_path / "xception_random.weights.h5")  # the suffix Keras 3 requires of save_weights
    model = tf.keras.applications.Xception(weights=None)
    model.save_weights(weights)
    expected_checksum = model_info.weights_checksum(model.get_weights())
    del model
    tf.keras.backend.clear_session()
    logdir = str(tmp_path / "logs")
    argv = ["--logdir", logdir, "--models", "xception", "--xception-weights", weights, "--images", str(photo_folder)]
    assert imagenet.main(argv) == 0
    run_dir = os.path.join(logdir, "xception")
    (checkpoint,) = files.checkpoint_manifests(run_dir)
    assert checkpoint["weights_sha256"] == expected_checksum
    assert checkpoint["input_shape"] == [299, 299, 3] and checkpoint["num_classes"] == 1000
    assert checkpoint["preprocessing"] == {"type": "keras_app", "module": "xception"}
    (samples,) = files.sample_manifests(run_dir)
    assert samples["name"] == imagenet.SAMPLES_NAME and samples["count"] == len(LABELS)
    with np.load(os.path.join(run_dir, *metadata.PLUGIN_DIR, metadata.SAMPLES_DIR, samples["file"])) as stored:
        assert stored["labels"].tolist() == list(LABELS)
        assert stored["images"].shape == (3, 299, 299, 3)
