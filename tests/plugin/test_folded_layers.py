"""A Rescaling-first model through the real plugin and its worker, in either stack: the layers the backend folded into
the recorded preprocessing are marked in the layers answer once a worker looked, never the default, and a map or an
activation asked for one is refused with the same sentence by the native and the iNNvestigate backend; augmentation
alone in front (the identity at inference) is folded by neither."""

import pytest
import tensorflow as tf

from tests.plugin.conftest import Served, body_of, cnn_images, write_run

MODEL = {"run": "rescaled", "step": 1}
FLIPPED = {"run": "flipped", "step": 1}
SAMPLES = {"run": "rescaled", "name": "val"}
FOLDED = ["pixels", "rescaling"]  # the input layer reads the raw image, which the fold turned into the recorded preprocessing
REFUSAL = "is input preprocessing, folded into the recorded preprocessing"


def preprocessing_first(layer):
    """28x28x1 -> `layer` -> conv(4) -> global average pool -> dense(3, softmax), seeded."""
    tf.keras.utils.set_random_seed(3)
    inputs = tf.keras.Input((28, 28, 1), name="pixels")
    x = layer(inputs)
    x = tf.keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf.keras.layers.Dense(3, activation="softmax", name="dense")(x)
    return tf.keras.Model(inputs, outputs, name="preprocessing_first")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One plugin on a logdir with a Rescaling-first model (its preprocessing recorded as none) and 2 samples, and a
    RandomFlip-first one."""
    root = str(tmp_path_factory.mktemp("folded"))
    images, labels = cnn_images(2)
    rescaling = tf.keras.layers.Rescaling(1.0 / 255.0, name="rescaling")
    write_run(root, MODEL["run"], {MODEL["step"]: preprocessing_first(rescaling)}, [("val", images, labels)])
    write_run(root, FLIPPED["run"], {FLIPPED["step"]: preprocessing_first(tf.keras.layers.RandomFlip(name="flip"))})
    server = Served(root, str(tmp_path_factory.mktemp("cache")))
    yield server
    server.close()


def folded_marks(body):
    """{layer name: its "folded" mark} of a layers / applicability answer."""
    return {layer["name"]: layer["folded"] for layer in body["layers"]}


def test_folded_layers_are_marked_once_a_worker_looked(served):
    before = body_of(served.get("layers", **MODEL))
    assert set(folded_marks(before).values()) == {None} and before["folded_layers"] is None  # unknown, never claimed
    checked = served.post("applicability", MODEL)
    assert checked.status_code == 200, checked.get_data(as_text=True)
    for body in (body_of(checked), body_of(served.get("layers", **MODEL))):
        assert body["folded_layers"] == FOLDED and body["default_layer"] == "conv"
        assert folded_marks(body) == {"pixels": True, "rescaling": True, "conv": False, "pool": False, "dense": False}
        reasons = {layer["name"]: layer.get("reason", "") for layer in body["layers"]}
        assert REFUSAL in reasons["rescaling"] and reasons["conv"] == ""
        assert body["methods"]["grad_cam"]["ok"] is True


def test_augmentation_alone_is_folded_by_neither_backend(served):
    checked = body_of(served.post("applicability", FLIPPED))
    assert checked["folded_layers"] == [] and checked["default_layer"] == "conv"
    assert set(folded_marks(checked).values()) == {False}


def test_a_folded_layer_asked_by_name_is_refused_in_both_stacks(served):
    body = {"models": [MODEL], "samples": SAMPLES, "indices": [0], "methods": [{"id": "grad_cam"}]}
    refused = body_of(served.post("attributions", dict(body, layer="rescaling")))["cells"]
    assert [cell["ok"] for cell in refused] == [False] and REFUSAL in refused[0]["error"], refused
    computed = body_of(served.post("attributions", dict(body, layer="conv")))["cells"]
    assert [cell["ok"] for cell in computed] == [True], computed
    suggested = body_of(served.post("suggestions", {"models": [MODEL], "samples": SAMPLES, "layer": "rescaling"}))
    assert suggested["activation"]["ok"] is False and REFUSAL in suggested["activation"]["error"], suggested
