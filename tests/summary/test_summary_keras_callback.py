"""XaiCallback during a real `fit`, beside Keras' TensorBoard callback in the same log_dir; the
checkpoints are then loaded in a fresh process as the engine's workers load them: in graph mode
on Keras 2 (the iNNvestigate backend), eagerly with safe_mode on Keras 3 (the native backend)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from summary_helpers import CTX, all_files, multiplexer_provider, run_names, tiny_cnn, wait_for, xai_tensors
from tb_xai_plugin import files, metadata
from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.keras import XaiCallback

CLASSES = ["zero", "one", "two"]
EPOCHS = 3

WORKER_LOAD_CHECK = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
KERAS3 = getattr(tf.keras, "__version__", "2").startswith("3")
if not KERAS3:
    tf.compat.v1.disable_eager_execution()
from tb_xai_plugin import files, model_info
run_dir, expected_path = sys.argv[1], sys.argv[2]
expected = json.load(open(expected_path))
with np.load(os.path.join(files.samples_dir(run_dir), "validation.npz")) as data:
    images = data["images"]
out = {}
for manifest in files.checkpoint_manifests(run_dir):
    path = os.path.join(files.checkpoints_dir(run_dir), manifest["file"])
    model = tf.keras.models.load_model(path, compile=False, **({"safe_mode": True} if KERAS3 else {}))
    predictions = model.predict(images, verbose=0)
    out[str(manifest["step"])] = {
        "same_predictions": bool(np.allclose(predictions, np.array(expected[str(manifest["step"])]), atol=1e-5)),
        "same_checksum": model_info.weights_checksum(model.get_weights()) == manifest["weights_sha256"],
    }
assert tf.executing_eagerly() == KERAS3
print(json.dumps(out))
"""


class RecordPredictions(tf.keras.callbacks.Callback):
    """Keeps the model's predictions on `images` at each checkpoint step, as the reference."""

    def __init__(self, images, step_of):
        super().__init__()
        self.images, self.step_of, self.by_step = images, step_of, {}

    def on_epoch_end(self, epoch, logs=None):
        self.by_step[self.step_of(epoch)] = self.model(self.images, training=False).numpy().tolist()


@pytest.fixture(scope="module")
def data():
    """64 random 28x28x1 images with labels in 0..2, and 8 validation images with labels."""
    rng = np.random.default_rng(1)
    return (
        rng.random((64, 28, 28, 1), dtype=np.float32),
        rng.integers(0, 3, 64),
        rng.random((8, 28, 28, 1), dtype=np.float32),
        rng.integers(0, 3, 8),
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data):
    """(logdir, run_dir, reference predictions) after fit with both callbacks into logs/cnn."""
    x, y, x_val, y_val = data
    logdir = str(tmp_path_factory.mktemp("logs"))
    run_dir = os.path.join(logdir, "cnn")
    tf.keras.utils.set_random_seed(0)
    model = tiny_cnn()
    model.compile("adam", "sparse_categorical_crossentropy")
    record = RecordPredictions(x_val, lambda epoch: epoch + 1)
    callbacks = [
        tf.keras.callbacks.TensorBoard(run_dir),
        XaiCallback(run_dir, samples=(x_val, y_val), class_names=CLASSES),
        record,
    ]
    model.fit(x, y, batch_size=16, epochs=EPOCHS, validation_data=(x_val, y_val), callbacks=callbacks, verbose=0)
    return logdir, run_dir, record.by_step


def test_one_checkpoint_per_epoch_and_the_samples(trained, data):
    _, run_dir, _ = trained
    manifests = files.checkpoint_manifests(run_dir)
    assert [m["step"] for m in manifests] == [1, 2, 3]
    assert all(m["class_names"] == CLASSES and m["input_shape"] == [28, 28, 1] for m in manifests)
    assert len({m["weights_sha256"] for m in manifests}) == EPOCHS  # it trained between checkpoints
    (sample_set,) = files.sample_manifests(run_dir)
    assert sample_set["name"] == "validation" and sample_set["count"] == 8 and sample_set["step"] == 0
    with np.load(files.sample_paths(run_dir, "validation")[0]) as arrays:
        np.testing.assert_array_equal(arrays["images"], data[2])
        np.testing.assert_array_equal(arrays["labels"], data[3])
    assert not [f for f in all_files(run_dir) if files.is_temp(f)]


def test_the_xai_run_is_named_after_the_training_run(trained, data_server):
    logdir = trained[0]
    for provider in (multiplexer_provider(logdir), data_server(logdir)):
        tensors = wait_for(lambda: xai_tensors(provider), lambda t: len(t.get("cnn", {})) == 2)
        assert sorted(tensors) == ["cnn"]
        assert sorted(tensors["cnn"]) == [metadata.CHECKPOINT_TAG, metadata.SAMPLES_TAG_PREFIX + "validation"]
        assert [d.step for d in tensors["cnn"][metadata.CHECKPOINT_TAG]] == [1, 2, 3]
        assert set(run_names(provider)) == {"cnn", "cnn/train", "cnn/validation"}
        scalars = provider.list_scalars(CTX, experiment_id="", plugin_name="scalars")
        assert "cnn/train" in scalars and "cnn" not in scalars


def test_checkpoints_load_as_the_workers_load_them_with_the_same_predictions(trained, tmp_path):
    _, run_dir, reference = trained
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({str(k): v for k, v in reference.items()}))
    result = subprocess.run(
        [sys.executable, "-c", WORKER_LOAD_CHECK, run_dir, str(expected)],
        capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checks = json.loads(result.stdout.strip().splitlines()[-1])
    assert checks == {str(step): {"same_predictions": True, "same_checksum": True} for step in (1, 2, 3)}


def test_every_n_batches_shares_one_step_axis(tmp_path, data):
    x, y, x_val, _ = data
    model = tiny_cnn()
    model.compile("sgd", "sparse_categorical_crossentropy")
    callback = XaiCallback(str(tmp_path), samples=x_val, every_n_epochs=1, every_n_batches=3, samples_name="val")
    model.fit(x, y, batch_size=16, epochs=2, callbacks=[callback], verbose=0)  # 4 batches per epoch
    assert [m["step"] for m in files.checkpoint_manifests(str(tmp_path))] == [3, 4, 6, 8]
    (sample_set,) = files.sample_manifests(str(tmp_path))
    assert sample_set["name"] == "val" and not sample_set["has_labels"]
    model.fit(x, y, batch_size=16, epochs=1, callbacks=[callback], verbose=0)
    assert [m["step"] for m in files.checkpoint_manifests(str(tmp_path))] == [3, 4, 6, 8, 9, 12]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"every_n_epochs": 0}, "every_n_epochs must be a positive integer"),
        ({"every_n_epochs": None}, "nothing to log"),
        ({"every_n_batches": 2.5}, "every_n_batches must be a positive integer"),
        ({"samples_name": "../x"}, "invalid name"),
        ({"samples": (np.zeros((2, 4, 4)), [0, 5]), "class_names": ["a", "b"]}, "labels must lie in 0..1"),
        ({"samples": (np.zeros((2, 4, 4)), [0], [1])}, "(images, labels) pair"),
        ({"samples": np.full((2, 4, 4), np.nan)}, "NaN"),
        ({"preprocessing": {"type": "zscore"}}, "preprocessing"),
    ],
)
def test_bad_arguments_fail_before_training(tmp_path, kwargs, message):
    with pytest.raises(XaiError) as caught:
        XaiCallback(str(tmp_path / "run"), **kwargs)
    assert message in str(caught.value)
    assert not os.path.exists(tmp_path / "run")
