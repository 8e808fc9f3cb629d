"""Untrusted checkpoints through the plugin: a layer holding code (a Lambda, in every nesting we can build,
logged with allow_unsafe=True or planted into the file afterwards) never runs unless
--xai_allow_unsafe_models, custom objects are refused, a model whose input does not fit the sample set
is refused; each cell says why, naming the layer by its path."""

import os

import pytest

from tb_xai_plugin import files, summary
from tests import unsafe_models as um
from tests.plugin.conftest import CLASSES, SCALE, Served, body_of, cnn_images, tiny_cnn

REFUSED = "is a Lambda layer, which runs code stored in the file; refused"
# run -> the layer path its refusal names: um.NESTINGS, plus files edited after logging
PLANTED = {"hidden_in_file": "td/lam"}
if not um.KERAS_3:
    PLANTED["savedmodel_nested"] = "td/inner/lam"
UNSAFE_RUNS = dict({"lambda": "lam"}, **{key: path for key, (_, path) in um.NESTINGS.items()}, **PLANTED)


def rgb_model():
    """32x32x3 -> conv -> pool -> dense(3): does not fit 28x28x1 samples."""
    import tensorflow as tf

    inputs = tf.keras.Input((32, 32, 3))
    x = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(4, 3)(inputs))
    return tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax")(x))


def _log(logdir, run, model, **kwargs):
    """summary.checkpoint(model) at step 1 of `run`: (data path, format) of the stored file."""
    writer = summary.create_file_writer(os.path.join(logdir, run))
    with writer.as_default():
        assert summary.checkpoint(model, step=1, class_names=CLASSES, preprocessing=SCALE, **kwargs)
    writer.close()
    (manifest,) = files.checkpoint_manifests(os.path.join(logdir, run))
    return files.checkpoint_paths(os.path.join(logdir, run), 1, manifest["format"])[0], manifest["format"]


def _as_savedmodel(logdir, run, model):
    """Replace the checkpoint of `run` by `model` saved as a SavedModel (what summary does when h5 fails)."""
    run_dir = os.path.join(logdir, run)
    (manifest,) = files.checkpoint_manifests(run_dir)
    files.remove_quietly(files.checkpoint_paths(run_dir, 1, manifest["format"])[0])
    data_path, manifest_path = files.checkpoint_paths(run_dir, 1, "savedmodel")
    model.save(data_path, save_format="tf", include_optimizer=False)
    files.write_json(manifest_path, dict(manifest, format="savedmodel", file=os.path.basename(data_path)))


def write_untrusted(logdir, marker, runs=("custom", "rgb", "plain") + tuple(UNSAFE_RUNS)):
    """Runs of `runs` at step 1 ('plain' with the samples 'val'); the marker is removed once they are logged.

    'lambda' and each um.NESTINGS run are logged with allow_unsafe=True; 'hidden_in_file' and 'custom'
    are safe models whose stored file is edited afterwards (a Lambda put into a TimeDistributed, a layer
    turned into a custom class); 'savedmodel_nested' (Keras 2) is the Lambda two models deep as a SavedModel.
    """
    images, labels = cnn_images(4)
    for run in runs:
        if run == "plain":
            writer = summary.create_file_writer(os.path.join(logdir, run))
            with writer.as_default():
                summary.samples("val", images, step=0, labels=labels, class_names=CLASSES)
            writer.close()
            _log(logdir, run, tiny_cnn(1))
        elif run == "lambda":
            _log(logdir, run, um.build(um.top_functional, marker), allow_unsafe=True)
        elif run in um.NESTINGS:
            _log(logdir, run, um.build(um.NESTINGS[run][0], marker), allow_unsafe=True)
        elif run == "hidden_in_file":
            um.hide_in_wrapper(*_log(logdir, run, um.safe_time_distributed()), um.lambda_record(marker))
        elif run == "savedmodel_nested":
            model = um.build(um.model_in_time_distributed, marker)
            _log(logdir, run, model, allow_unsafe=True)
            _as_savedmodel(logdir, run, model)
        elif run == "custom":
            um.make_custom(*_log(logdir, run, tiny_cnn(2)))
        elif run == "rgb":
            _log(logdir, run, rgb_model())
    if os.path.exists(marker):
        os.remove(marker)  # written while the models were built and saved here, in the test
    return logdir


@pytest.fixture(scope="module")
def untrusted(tmp_path_factory):
    """A logdir with the runs of write_untrusted; and the marker's path."""
    root = tmp_path_factory.mktemp("untrusted")
    marker = str(root / "code-ran")
    return write_untrusted(str(root / "logdir"), marker), marker


def body(runs, route="attributions"):
    """A body for `runs` (step 1) on the plain run's samples."""
    out = {"models": [{"run": r, "step": 1} for r in runs], "samples": {"run": "plain", "name": "val"}, "indices": [0, 1]}
    return dict(out, methods=[{"id": "gradient"}]) if route == "attributions" else out


def test_no_nesting_of_a_lambda_runs_by_default(untrusted, tmp_path):
    logdir, marker = untrusted
    server = Served(logdir, str(tmp_path / "cache"))
    try:
        cells = body_of(server.post("attributions", body(["lambda", "plain"])))["cells"]
        assert [c["ok"] for c in cells] == [False, True]
        assert "layer 'lam' %s" % REFUSED in cells[0]["error"] and "--xai_allow_unsafe_models" in cells[0]["error"]
        models = body_of(server.post("predictions", body(sorted(UNSAFE_RUNS), "predictions")))["models"]
        for entry in models:
            assert entry["ok"] is False, entry
            assert "layer '%s' %s" % (UNSAFE_RUNS[entry["run"]], REFUSED) in entry["error"], entry
        cells = body_of(server.post("attributions", body(sorted(UNSAFE_RUNS))))["cells"]
        assert not any(c["ok"] for c in cells) and all(REFUSED in c["error"] for c in cells)
        layers = server.get("layers", run="lambda", step="1")  # read from the manifest: nothing loaded
        assert layers.status_code == 200
        checked = server.post("applicability", {"run": "lambda", "step": 1})  # the worker's loader refuses it unbuilt
        assert checked.status_code == 200
        assert all(not m["ok"] and REFUSED in m["reason"] for m in body_of(checked)["methods"].values())
        assert not os.path.exists(marker)
    finally:
        server.close()
    assert not os.path.exists(marker)


def test_logging_with_allow_unsafe_marks_the_manifest(untrusted):
    logdir, _ = untrusted
    for run in um.NESTINGS:
        (manifest,) = files.checkpoint_manifests(os.path.join(logdir, run))
        assert manifest["unsafe_layers"] == [UNSAFE_RUNS[run]]
    (manifest,) = files.checkpoint_manifests(os.path.join(logdir, "plain"))
    assert "unsafe_layers" not in manifest


def test_a_lambda_layer_runs_only_with_the_flag(untrusted, tmp_path):
    logdir, marker = untrusted
    server = Served(logdir, str(tmp_path / "cache"), xai_allow_unsafe_models=True)
    try:
        models = body_of(server.post("predictions", body(["lambda", "hidden_in_file"], "predictions")))["models"]
        assert [m["ok"] for m in models] == [True, True], models
        assert os.path.exists(marker)  # the marker does detect the stored code running, the planted one too
    finally:
        server.close()
        if os.path.exists(marker):
            os.remove(marker)


def test_custom_objects_and_mismatched_inputs_are_refused(untrusted, tmp_path):
    logdir, marker = untrusted
    server = Served(logdir, str(tmp_path / "cache"), xai_allow_unsafe_models=True)
    try:
        cells = body_of(server.post("attributions", body(["custom", "rgb", "plain"])))["cells"]
        assert [c["ok"] for c in cells] == [False, False, True]
        assert "layer 'doubling' has the unknown type 'Doubling' (a custom object" in cells[0]["error"]
        assert cells[1]["error"] == "model rgb@1 takes images of shape [32, 32, 3]; sample set 'val' holds [28, 28, 1]: refused"
        assert server.plugin.pool.stats["submitted"] == 2  # custom (refused by its worker) and plain; rgb never sent
        models = body_of(server.post("predictions", body(["rgb", "plain"], "predictions")))["models"]
        assert [m["ok"] for m in models] == [False, True] and "[32, 32, 3]" in models[0]["error"]
    finally:
        server.close()
    assert not os.path.exists(marker)
