"""summary.checkpoint: files, manifest and index summary, read back through TensorBoard's readers."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from summary_helpers import CTX, FORMAT, SUFFIX, all_files, multiplexer_provider, run_names, tiny_cnn, tiny_dense, wait_for, xai_tensors
from tb_xai_plugin import files, metadata, model_info, summary
from tb_xai_plugin.errors import XaiError

MANY = 150


@pytest.fixture(scope="module")
def many_checkpoints(tmp_path_factory):
    """A logdir whose run 'many' holds MANY checkpoints of a tiny model (weights change each step)."""
    logdir = str(tmp_path_factory.mktemp("many"))
    model = tiny_dense()
    writer = summary.create_file_writer(os.path.join(logdir, "many"))
    with writer.as_default():
        for step in range(1, MANY + 1):
            model.layers[-1].bias.assign(np.full(2, step, np.float32))
            assert summary.checkpoint(model, step, class_names=["cat", "dog"])
    writer.close()
    return logdir


def test_every_checkpoint_has_complete_files_and_manifest(many_checkpoints):
    run_dir = os.path.join(many_checkpoints, "many")
    manifests = files.checkpoint_manifests(run_dir)
    assert [m["step"] for m in manifests] == list(range(1, MANY + 1))
    assert not [f for f in all_files(many_checkpoints) if files.is_temp(f)]
    last = manifests[-1]
    assert set(metadata.CHECKPOINT_KEYS) <= set(last)
    assert last["format"] == FORMAT and last["file"] == "step-000000150" + SUFFIX
    assert last["versions"]["keras"] == summary.keras_version(tf.keras.Model())
    assert last["class_names"] == ["cat", "dog"] and last["num_classes"] == 2
    assert last["input_shape"] == [4, 4, 1] and last["preprocessing"] == {"type": "none"}
    assert last["output_activation"] == "softmax"
    data = os.path.join(files.checkpoints_dir(run_dir), last["file"])
    assert files.sha256(data) == last["file_sha256"]
    loaded = tf.keras.models.load_model(data, compile=False)
    assert model_info.weights_checksum(loaded.get_weights()) == last["weights_sha256"]
    np.testing.assert_array_equal(loaded.layers[-1].bias.numpy(), [MANY, MANY])
    assert len({m["weights_sha256"] for m in manifests}) == MANY


def _check_index(tensors, run):
    """The xai index events of `run` are a subset of the checkpoints, each pointing at its manifest's file."""
    data = tensors[run][metadata.CHECKPOINT_TAG]
    steps = [d.step for d in data]
    assert steps and set(steps) <= set(range(1, MANY + 1)) and steps[-1] == MANY
    for datum in data:
        index = json.loads(datum.numpy.item().decode("utf-8"))
        assert index["step"] == datum.step and index["file"] == metadata.checkpoint_basename(datum.step) + SUFFIX
    return steps


def test_index_summaries_through_the_python_loader(many_checkpoints):
    provider = multiplexer_provider(many_checkpoints)
    assert run_names(provider) == ["many"]
    listed = provider.list_tensors(CTX, experiment_id="", plugin_name="xai")
    series = listed["many"][metadata.CHECKPOINT_TAG]
    assert series.max_step == MANY
    content = series.plugin_content
    assert metadata.parse_index_content(content) == {"version": 1, "kind": "checkpoint"}
    steps = _check_index(xai_tensors(provider), "many")
    assert len(steps) < MANY  # TensorBoard samples; the manifests above still have all 150


def test_index_summaries_through_the_data_server(many_checkpoints, data_server):
    provider = data_server(many_checkpoints)
    tensors = wait_for(lambda: xai_tensors(provider), lambda t: MANY in [d.step for d in t.get("many", {}).get(metadata.CHECKPOINT_TAG, [])])
    steps = _check_index(tensors, "many")
    assert len(steps) < MANY
    assert run_names(provider) == ["many"]


def test_default_step_and_scope_name(tmp_path):
    writer = summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=7):
        assert summary.checkpoint(tiny_dense(), name="scoped") is True
    writer.close()
    assert [m["step"] for m in files.checkpoint_manifests(str(tmp_path))] == [7]
    tensors = xai_tensors(multiplexer_provider(str(tmp_path)))
    assert [d.step for d in tensors["."][metadata.CHECKPOINT_TAG]] == [7]


def test_relogging_a_step_replaces_it(tmp_path):
    model = tiny_dense()
    writer = summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=1):
        summary.checkpoint(model)
        model.layers[-1].bias.assign([5.0, 6.0])
        summary.checkpoint(model)
    (manifest,) = files.checkpoint_manifests(str(tmp_path))
    assert manifest["weights_sha256"] == model_info.weights_checksum(model.get_weights())
    assert len(all_files(files.checkpoints_dir(str(tmp_path)))) == 2


def test_plain_tf_writer_needs_logdir(tmp_path):
    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=1):
        with pytest.raises(XaiError, match="does not expose it.*create_file_writer"):
            summary.checkpoint(tiny_dense())
        assert summary.checkpoint(tiny_dense(), logdir=str(tmp_path))
    writer.close()
    assert all_files(files.checkpoints_dir(str(tmp_path))) == sorted(["step-000000001.json", "step-000000001" + SUFFIX])


def test_logdir_other_than_the_writers_is_refused(tmp_path):
    writer = summary.create_file_writer(str(tmp_path / "a"))
    with writer.as_default(step=1), pytest.raises(XaiError, match="differs"):
        summary.checkpoint(tiny_dense(), logdir=str(tmp_path / "b"))
    assert not os.path.exists(tmp_path / "b") and not os.path.exists(files.plugin_dir(str(tmp_path / "a")))


def test_no_writer_or_not_recording_writes_nothing(tmp_path):
    assert summary.checkpoint(tiny_dense(), 1, logdir=str(tmp_path)) is False
    writer = summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=1), tf.summary.record_if(False):
        assert summary.checkpoint(tiny_dense()) is False
    assert not os.path.exists(files.plugin_dir(str(tmp_path)))


class Factor:
    """A plain object: Keras cannot turn it into a layer config."""

    def __init__(self, value):
        self.value = value


class Scale(tf.keras.layers.Layer):
    """A layer whose config cannot be serialized: no file format can rebuild it."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def call(self, x):
        return x * self.factor.value


def test_a_layer_without_config_is_refused_before_writing(tmp_path):
    inputs = tf.keras.Input((4, 4, 1))
    outputs = tf.keras.layers.Dense(2, activation="softmax")(tf.keras.layers.Flatten()(Scale(Factor(2.0))(inputs)))
    model = tf.keras.Model(inputs, outputs, name="custom")
    writer = summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=3), pytest.raises(XaiError, match="'custom' has no config"):
        summary.checkpoint(model)
    assert not os.path.exists(files.plugin_dir(str(tmp_path)))


def test_inside_tf_function_is_refused(tmp_path):
    model = tiny_dense()
    writer = summary.create_file_writer(str(tmp_path))

    @tf.function
    def log():
        return summary.checkpoint(model, 1)

    with writer.as_default(step=1), pytest.raises(XaiError, match="run eagerly"):
        log()
    assert not os.path.exists(files.plugin_dir(str(tmp_path)))


def test_preprocessing_and_class_names_recorded(tmp_path):
    writer = summary.create_file_writer(str(tmp_path))
    with writer.as_default(step=2):
        summary.checkpoint(tiny_cnn((8, 8, 3)), class_names=["a", "b", "c"], preprocessing={"type": "scale", "scale": 2, "offset": -1})
        summary.checkpoint(tiny_cnn((8, 8, 3)), 3, preprocessing={"type": "keras_app", "module": "vgg16"})
    two, three = files.checkpoint_manifests(str(tmp_path))
    assert two["preprocessing"] == {"type": "scale", "scale": 2.0, "offset": -1.0}
    assert two["class_names"] == ["a", "b", "c"] and three["class_names"] == ["0", "1", "2"]
    assert three["preprocessing"] == {"type": "keras_app", "module": "vgg16"}
    assert [layer["type"] for layer in two["layers"]] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert model_info.last_conv_layer(two["layers"]) == two["layers"][0]["name"]
