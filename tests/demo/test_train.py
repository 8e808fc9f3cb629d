"""The demo sweep at a tiny size: every run has its checkpoints, the shared sample set and its curves."""

import os

import keras
import numpy as np
import pytest
from tensorboard import context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

from demo import data, train
from tb_xai_plugin import files, metadata

# The format this stack's logging writes: .keras from Keras 3, .h5 from Keras 2.
STACK_FORMAT = "keras" if keras.__version__.startswith("3") else "h5"


def _provider(logdir):
    """TensorBoard's own data provider over `logdir`, as `tensorboard --logdir` reads it."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    return data_provider.MultiplexerDataProvider(multiplexer, logdir), context.RequestContext()


def test_every_run_has_a_checked_checkpoint_per_epoch(tiny_sweep):
    logdir, size = tiny_sweep
    assert sorted(os.listdir(logdir)) == sorted(train.RUNS)
    for run in train.RUNS:
        manifests = files.checkpoint_manifests(os.path.join(logdir, run))
        assert [m["step"] for m in manifests] == list(range(1, size["epochs"] + 1)), run
        for manifest in manifests:
            path = os.path.join(logdir, run, *metadata.PLUGIN_DIR, metadata.CHECKPOINTS_DIR, manifest["file"])
            assert files.sha256(path) == manifest["file_sha256"]
            assert manifest["format"] == STACK_FORMAT
            assert manifest["file"] == metadata.checkpoint_filename(manifest["step"], STACK_FORMAT)
            assert manifest["versions"]["keras"] == keras.__version__
            assert manifest["input_shape"] == [28, 28, 1]
            assert manifest["class_names"] == list(data.CLASS_NAMES)
            assert manifest["preprocessing"] == train.PREPROCESSING
            assert manifest["output_activation"] == "softmax"
            assert any(layer["conv"] for layer in manifest["layers"])


def test_the_architectures_differ_like_vgg_resnet_xception(tiny_sweep):
    logdir, _ = tiny_sweep
    types = {
        run: {layer["type"] for layer in files.checkpoint_manifests(os.path.join(logdir, run))[-1]["layers"]}
        for run in train.RUNS
    }
    assert "BatchNormalization" not in types["cnn"] and "Add" not in types["cnn"]
    assert {"BatchNormalization", "Add"} <= types["resnet"]
    assert "SeparableConv2D" in types["sepconv"]
    assert types["cnn-biased"] == types["cnn"]


def test_every_run_logs_the_same_sample_set_with_marked_probes(tiny_sweep, fashion):
    logdir, size = tiny_sweep
    expected_images, expected_labels, marked = data.shared_samples(*fashion[1], size["val_size"])
    checksums = set()
    for run in train.RUNS:
        (manifest,) = files.sample_manifests(os.path.join(logdir, run))
        assert manifest["name"] == train.SAMPLES_NAME and manifest["count"] == size["val_size"]
        assert manifest["class_names"] == list(data.CLASS_NAMES)
        checksums.add(manifest["sha256"])
        path = os.path.join(logdir, run, *metadata.PLUGIN_DIR, metadata.SAMPLES_DIR, manifest["file"])
        with np.load(path) as stored:
            np.testing.assert_array_equal(stored["images"], expected_images)
            np.testing.assert_array_equal(stored["labels"], expected_labels)
    assert len(checksums) == 1
    row, col = data.MARK_ORIGIN
    assert (expected_images[marked, row, col, 0] == data.MARK_VALUE).all()
    assert (marked & (expected_labels != data.BIAS_CLASS)).any(), "the sample set needs marked probes of other classes"


def test_tensorboard_sees_curves_and_xai_index_of_every_run(tiny_sweep):
    logdir, size = tiny_sweep
    provider, ctx = _provider(logdir)
    runs = {r.run_name for r in provider.list_runs(ctx, experiment_id="")}
    scalars = provider.read_scalars(
        ctx, experiment_id="", plugin_name="scalars", downsample=1000,
        run_tag_filter=None,
    )
    xai = provider.list_tensors(ctx, experiment_id="", plugin_name=metadata.PLUGIN_NAME)
    for run in train.RUNS:
        assert {run, run + "/train", run + "/validation"} <= runs
        for split in ("train", "validation"):
            for tag in ("epoch_loss", "epoch_accuracy"):
                points = scalars[run + "/" + split][tag]
                assert [p.step for p in points] == list(range(size["epochs"])), (run, split, tag)
                assert all(np.isfinite(p.value) for p in points)
        assert {metadata.CHECKPOINT_TAG, metadata.SAMPLES_TAG_PREFIX + train.SAMPLES_NAME} <= set(xai[run])


def test_a_second_run_keeps_the_trained_runs_untouched(tiny_sweep):
    logdir, size = tiny_sweep
    before = {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns for d, _, fs in os.walk(logdir) for f in fs}
    argv = ["--logdir", logdir, "--epochs", str(size["epochs"]), "--train-size", "64", "--val-size", str(size["val_size"])]
    assert train.main(argv) == 0
    after = {os.path.join(d, f): os.stat(os.path.join(d, f)).st_mtime_ns for d, _, fs in os.walk(logdir) for f in fs}
    assert after == before


def test_an_interrupted_run_is_refused_not_appended_to(tiny_sweep, tmp_path, capsys):
    logdir, size = tiny_sweep
    assert train.main(["--logdir", logdir, "--runs", "cnn", "--epochs", str(size["epochs"] + 1)]) == 2
    assert os.path.join(logdir, "cnn") in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--runs", "vgg"], ["--epochs", "0"], ["--val-size", "20000"], ["--train-size", "70000"]])
def test_bad_flags_are_refused_before_anything_is_written(tmp_path, argv):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--logdir", str(tmp_path / "logs")] + argv)
    assert exit_info.value.code == 2
    assert not (tmp_path / "logs").exists()
