"""Retention: the policy, summary.checkpoint(keep_last=, keep_every=, metric=), the callback's policy and size
warning, and `tb-xai prune`, on real checkpoints of a tiny model."""

import contextlib
import io
import os
import shutil
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tb_xai_plugin import cli, files, retention, summary
from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.keras import XaiCallback
from tb_xai_plugin.plugin import result_store

METRICS = {1: 0.9, 2: 0.4, 3: 0.7, 4: 0.8, 5: 0.6, 6: 0.5, 7: 0.65}  # step -> val_loss: step 2 is the best


def tiny_model():
    """8x8x1 -> flatten -> dense(3, softmax)."""
    inputs = tf.keras.Input((8, 8, 1))
    outputs = tf.keras.layers.Dense(3, activation="softmax")(tf.keras.layers.Flatten()(inputs))
    return tf.keras.Model(inputs, outputs)


def manifest(step, value=None):
    """A checkpoint manifest as far as retention reads it."""
    return {"step": step} if value is None else {"step": step, "metric": {"name": "val_loss", "value": value, "mode": "min"}}


def steps_on_disk(run_dir):
    """(steps with a manifest, data file names) of a run."""
    names = files.list_names(files.checkpoints_dir(run_dir))
    return [m["step"] for m in files.checkpoint_manifests(run_dir)], sorted(n for n in names if not n.endswith(".json"))


def log_steps(run_dir, steps, **policy):
    """Log the tiny model at each step with its METRICS value, under `policy`."""
    model = tiny_model()
    writer = summary.create_file_writer(run_dir)
    with writer.as_default():
        for step in steps:
            assert summary.checkpoint(model, step, metric=METRICS[step], metric_name="val_loss", **policy)
    writer.close()


@pytest.fixture(scope="module")
def full_logdir(tmp_path_factory):
    """A logdir with runs x and y/z, each holding the checkpoints of steps 1..7 (nothing deleted)."""
    logdir = str(tmp_path_factory.mktemp("logs"))
    for run in ("x", os.path.join("y", "z")):
        log_steps(os.path.join(logdir, run), sorted(METRICS))
    return logdir


def test_a_policy_keeps_the_first_the_best_the_last_and_the_multiples():
    manifests = [manifest(s, v) for s, v in METRICS.items()]
    assert retention.kept_steps(manifests, retention.Policy()) == set(METRICS)
    assert retention.kept_steps(manifests, retention.Policy(keep_last=2)) == {1, 2, 6, 7}
    assert retention.kept_steps(manifests, retention.Policy(keep_last=1, keep_every=3)) == {1, 2, 3, 6, 7}
    maxed = [dict(m, metric=dict(m["metric"], mode="max")) for m in manifests]
    assert retention.kept_steps(maxed, retention.Policy(keep_last=1)) == {1, 7}  # 0.9 at step 1 is the best there
    assert retention.kept_steps([manifest(s) for s in (3, 5, 8)], retention.Policy(keep_last=1)) == {3, 8}  # no metric


def test_applying_a_policy_again_after_more_checkpoints_keeps_what_keep_every_kept():
    policy = retention.Policy(keep_last=1, keep_every=3)
    first = retention.kept_steps([manifest(s) for s in range(1, 8)], policy)
    later = retention.kept_steps([manifest(s) for s in sorted(first | {8, 9, 10})], policy)
    assert first == {1, 3, 6, 7} and later == {1, 3, 6, 9, 10}


@pytest.mark.parametrize("kwargs", [{"keep_last": 0}, {"keep_every": -1}, {"keep_last": 2.5}, {"metric": "low"}, {"metric": float("nan")}])
def test_bad_policies_and_metrics_write_nothing(tmp_path, kwargs):
    writer = summary.create_file_writer(str(tmp_path))
    with writer.as_default(), pytest.raises(XaiError):
        summary.checkpoint(tiny_model(), 1, **kwargs)
    assert steps_on_disk(str(tmp_path)) == ([], [])


def test_summary_checkpoint_applies_its_policy_after_each_checkpoint(tmp_path):
    run_dir = str(tmp_path / "run")
    log_steps(run_dir, sorted(METRICS), keep_last=2, keep_every=4)
    steps, data = steps_on_disk(run_dir)
    assert steps == [1, 2, 4, 6, 7]  # first, best (val_loss 0.4), a multiple of 4, the last two
    assert data == [m["file"] for m in files.checkpoint_manifests(run_dir)]  # every data file has its manifest, none left over
    best = [m for m in files.checkpoint_manifests(run_dir) if m["step"] == 2][0]
    assert best["metric"] == {"name": "val_loss", "value": 0.4, "mode": "min"}


def test_a_checkpoint_is_deleted_manifest_first_then_its_data_then_its_results(full_logdir, tmp_path, monkeypatch):
    run_dir = str(tmp_path / "x")
    shutil.copytree(os.path.join(full_logdir, "x"), run_dir)
    results = result_store.results_dir(run_dir, 3)
    os.makedirs(os.path.join(results, "ab"))
    open(os.path.join(results, "ab", "ab12.npz"), "wb").close()
    manifest_path = os.path.join(files.checkpoints_dir(run_dir), "step-000000003.json")
    order, remove = [], tf.io.gfile.remove

    def quiet_removal(path):
        order.append((os.path.basename(os.path.dirname(path)), os.path.basename(path), os.path.exists(manifest_path)))
        shutil.rmtree(path) if os.path.isdir(path) else remove(path)

    monkeypatch.setattr(tf.io.gfile, "remove", lambda path: order.append(("manifest", os.path.basename(path))) or remove(path))
    monkeypatch.setattr(files, "remove_quietly", quiet_removal)
    suffix = os.path.splitext(files.checkpoint_manifests(run_dir)[0]["file"])[1]  # .keras (Keras 3) or .h5 (Keras 2)
    assert retention.apply(run_dir, retention.Policy(keep_last=4)) == [3]
    assert order == [
        ("manifest", "step-000000003.json"),
        ("checkpoints", "step-000000003" + suffix, False),
        ("results", "step-000000003", False),
    ]
    assert not os.path.exists(results) and os.path.exists(result_store.results_dir(run_dir))


def test_prune_dry_run_says_what_it_would_delete_and_deletes_nothing(full_logdir, tmp_path):
    logdir = str(tmp_path / "logs")
    shutil.copytree(full_logdir, logdir)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["prune", "--logdir", logdir, "--keep-last", "1", "--keep-every", "3", "--dry-run"]) == 0
    assert out.getvalue().count("would delete steps [4, 5]") == 2
    assert steps_on_disk(os.path.join(logdir, "x"))[0] == sorted(METRICS)


def test_prune_applies_the_policy_to_every_run(full_logdir, tmp_path):
    logdir = str(tmp_path / "logs")
    shutil.copytree(full_logdir, logdir)
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["prune", "--logdir", logdir, "--keep-last", "1", "--keep-every", "3"]) == 0
    for run in ("x", os.path.join("y", "z")):
        steps, data = steps_on_disk(os.path.join(logdir, run))
        assert steps == [1, 2, 3, 6, 7] and len(data) == 5


def test_prune_refuses_a_bad_policy_and_deletes_nothing(full_logdir, tmp_path, capsys):
    logdir = str(tmp_path / "logs")
    shutil.copytree(full_logdir, logdir)
    assert cli.main(["prune", "--logdir", logdir, "--keep-last", "0"]) == 2
    assert "keep_last must be a positive integer" in capsys.readouterr().err
    assert steps_on_disk(os.path.join(logdir, "x"))[0] == sorted(METRICS)


class ScriptedValLoss(tf.keras.callbacks.Callback):
    """Sets logs["val_loss"] to METRICS[epoch + 1] for the callbacks after it."""

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = METRICS[epoch + 1]


def test_the_callback_keeps_first_best_and_last_and_warns_once_about_size(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 8, 8, 1), dtype=np.float32), rng.integers(0, 3, 16)
    model = tiny_model()
    model.compile("sgd", "sparse_categorical_crossentropy")
    kept, everything, quiet = (str(tmp_path / name) for name in ("kept", "everything", "quiet"))
    callbacks = [
        ScriptedValLoss(),
        XaiCallback(kept, keep_last=1),
        XaiCallback(everything, size_warning_mb=0.001),  # a checkpoint of this model is about 20 kB
        XaiCallback(quiet),
    ]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=5, callbacks=callbacks, verbose=0)
    assert steps_on_disk(kept)[0] == [1, 2, 5]
    assert [m["metric"]["value"] for m in files.checkpoint_manifests(kept)] == [0.9, 0.4, 0.6]
    size_warnings = [str(w.message) for w in caught if "size_warning_mb" in str(w.message)]
    assert len(size_warnings) == 1 and everything in size_warnings[0]
    assert steps_on_disk(everything)[0] == steps_on_disk(quiet)[0] == [1, 2, 3, 4, 5]
