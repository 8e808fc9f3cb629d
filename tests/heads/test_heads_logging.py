"""The manifest records the head kind; a binary head takes two class names; what cannot be explained is refused
at log time with the reason, and the callback says so once and trains on."""

import os
import warnings

import pytest
import tensorflow as tf

from tb_xai_plugin import files, summary
from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.keras import XaiCallback
from tests.heads.conftest import EXPECTED_HEAD, HEADS, SHAPE, head_model, samples


@pytest.mark.parametrize("run", sorted(HEADS))
def test_the_manifest_records_the_head_kind(run):
    units, activation, names, _ = HEADS[run]
    fields = summary.describe_model(head_model(units, activation), class_names=names)
    assert fields["head"] == EXPECTED_HEAD[run]
    assert fields["num_classes"] == len(names) and fields["class_names"] == names


def test_a_binary_head_takes_two_class_names_not_one():
    model = head_model(1, "sigmoid")
    assert summary.describe_model(model, class_names=["cat", "dog"])["num_classes"] == 2
    with pytest.raises(XaiError, match="binary_sigmoid head. has 2 classes but 1 class_names"):
        summary.describe_model(model, class_names=["dog"])


def test_a_dense_then_a_sigmoid_activation_is_a_binary_head():
    inputs = tf.keras.Input(SHAPE)
    z = tf.keras.layers.Dense(1, name="z")(tf.keras.layers.GlobalAveragePooling2D()(inputs))
    model = tf.keras.Model(inputs, tf.keras.layers.Activation("sigmoid", name="p")(z))
    assert summary.describe_model(model)["head"] == "binary_sigmoid"


def pooled_one_channel():
    """16x16x3 -> Conv2D(1, 1) -> global average pool -> sigmoid: one output unit whose logit no Dense layer computes."""
    inputs = tf.keras.Input(SHAPE)
    pooled = tf.keras.layers.GlobalAveragePooling2D()(tf.keras.layers.Conv2D(1, 1)(inputs))
    return tf.keras.Model(inputs, tf.keras.layers.Activation("sigmoid")(pooled))


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda: head_model(1, "softmax"), "softmax over 1 unit, which is 1.0 whatever the input"),
        (lambda: head_model(3, "tanh"), "output activation 'tanh' is not softmax, sigmoid or linear"),
        (pooled_one_channel, "one output unit must come from a Dense layer"),
    ],
)
def test_what_cannot_be_explained_is_refused_at_log_time(tmp_path, make, reason):
    with pytest.raises(XaiError) as caught:
        summary.checkpoint(make(), 1, logdir=str(tmp_path / "run"))
    assert reason in str(caught.value) and "cannot be explained" in str(caught.value)
    assert not os.path.exists(tmp_path / "run" / "plugins")


def test_the_callback_warns_once_and_training_goes_on(tmp_path):
    model = head_model(1, "softmax")  # a one-unit softmax: always 1.0, nothing to explain
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    images, labels = samples()
    callback = XaiCallback(str(tmp_path / "run"), samples=(images, labels))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(images.astype("float32") / 255, labels, epochs=3, verbose=0, callbacks=[callback])
    ours = [w for w in caught if "tb-xai logs no checkpoints" in str(w.message)]
    assert len(history.history["loss"]) == 3
    assert len(ours) == 1 and "softmax over 1 unit" in str(ours[0].message)
    assert files.checkpoint_manifests(str(tmp_path / "run")) == []
