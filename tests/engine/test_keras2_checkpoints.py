"""Keras 2 `.h5` checkpoints of real architectures load and compute in the Keras 3 stack (tb_xai_plugin.keras2_config).

The checkpoints are written once per module by the Keras 2 stack (tests/engine/keras2_checkpoints.py, a
subprocess): depthwise / separable convolutions, batch norm, dropout, Keras applications built in Keras 2
(MobileNetV2, DenseNet121, EfficientNetB0, ResNet50; weights=None, 32x32), whole or nested as a layer, with
Rescaling or TFOpLambda preprocessing. Keras 3.15's own legacy loader refuses every one of them.
"""

import json

import numpy as np
import pytest

from tb_xai_plugin import keras2_config, model_info
from tb_xai_plugin.errors import XaiError

pytestmark = pytest.mark.stack("keras3")

LOADABLE = ["separable", "shared_sequential", "mobilenet_v2", "mobilenet_v2_nested", "mobilenet_v2_tfop", "densenet121",
            "efficientnet_b0_nested", "resnet50_nested"]  # fmt: skip
EPS = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def keras2(tmp_path_factory):
    """({name: (path, manifest)}, images, {name: Keras 2 probabilities}) written by the Keras 2 stack."""
    import keras2_checkpoints

    return keras2_checkpoints.run(tmp_path_factory.mktemp("keras2"))


@pytest.fixture(scope="module")
def loaded(keras2):
    """{name: the engine's NativeModel of that Keras 2 checkpoint}, loaded once."""
    from tb_xai_plugin import engine

    written = keras2[0]
    return {name: engine.load_checkpoint(*written[name]) for name in LOADABLE}


@pytest.mark.parametrize("name", LOADABLE)
def test_keras3_own_loader_refuses_it(keras2, name):
    import keras

    path = keras2[0][name][0]
    with pytest.raises((TypeError, ValueError)):
        keras.saving.load_model(path, compile=False, safe_mode=True)


@pytest.mark.parametrize("name", LOADABLE)
def test_the_translated_model_has_the_same_weights_and_predictions(keras2, loaded, name):
    (_, manifest), images, predictions = keras2[0][name], keras2[1], keras2[2]
    model = loaded[name]
    assert model.backend == "native"
    assert model_info.weights_checksum(model.saved_model.get_weights()) == manifest["weights_sha256"]  # keras_model: preprocessing folded
    probs = model.probabilities(model.preprocess(images))
    # float32: ~1e3 roundings on the way (depth x accumulation), each of relative size eps, on probabilities <= 1.
    assert np.abs(probs - predictions[name]).max() <= 1e3 * EPS


@pytest.mark.parametrize("method", ["gradient", "lrp.epsilon"])
@pytest.mark.parametrize("name", LOADABLE)
def test_the_engine_computes_maps_on_it(keras2, loaded, name, method):
    from tb_xai_plugin import engine

    images = keras2[1]
    if method == "lrp.epsilon" and name.startswith("efficientnet"):  # swish: the identity rule, only in lrp.z / epsilon / presets
        with pytest.raises(XaiError, match="'stem_activation'.*silu"):
            engine.attribute(loaded[name], "lrp.alpha_beta", images, target={"kind": "predicted"})
    result = engine.attribute(loaded[name], method, images, target={"kind": "predicted"})
    assert result.maps.shape[:3] == images.shape[:3]
    assert np.isfinite(result.maps).all() and np.abs(result.maps).max() > 0


def test_a_layer_named_as_keras2_named_it_is_found(keras2, loaded):
    from tb_xai_plugin import engine

    (_, manifest), images = keras2[0]["densenet121"], keras2[1]
    assert "conv1/relu" in {layer["name"] for layer in manifest["layers"]}  # Keras 3 calls it conv1_relu
    result = engine.attribute(loaded["densenet121"], "activation", images, layer="conv1/relu")
    assert np.isfinite(result.maps).all() and np.abs(result.maps).max() > 0


def test_a_layer_without_translation_is_refused_by_name(keras2):
    from tb_xai_plugin import engine

    path, manifest = keras2[0]["resnet50_caffe"]
    with pytest.raises(XaiError, match=r"'tf.__operators__.getitem' \(SlicingOpLambda"):
        engine.load_checkpoint(path, manifest)


def test_nested_model_calls_are_renumbered():
    config = {"class_name": "Functional", "config": {"name": "outer", "layers": [
        {"class_name": "InputLayer", "name": "in", "config": {"name": "in"}, "inbound_nodes": []},
        {"class_name": "Functional", "name": "base", "config": {"name": "base", "layers": [
            {"class_name": "InputLayer", "name": "x", "config": {"name": "x"}, "inbound_nodes": []}],
            "input_layers": [["x", 0, 0]], "output_layers": [["x", 0, 0]]},
         "inbound_nodes": [[["in", 0, 0, {}]]]},
        {"class_name": "Dense", "name": "d/1", "config": {"name": "d/1"}, "inbound_nodes": [[["base", 1, 0, {}]]]},
    ], "input_layers": [["in", 0, 0]], "output_layers": [["d/1", 0, 0]]}}  # fmt: skip
    out = keras2_config.translate(config)["config"]
    assert out["layers"][2]["inbound_nodes"] == [[["base", 0, 0, {}]]] and out["layers"][2]["config"]["name"] == "d_1"
    assert out["output_layers"] == [["d_1", 0, 0]] and out["layers"][1]["config"]["input_layers"] == [["x", 0, 0]]
    assert json.dumps(config).count('"base", 1') == 1  # the original is left as it was


def test_grouped_depthwise_is_refused():
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "DepthwiseConv2D", "config": {"name": "dw", "groups": 2}}]}}  # fmt: skip
    with pytest.raises(XaiError, match="'dw'.*groups=2"):
        keras2_config.translate(config)


def test_tb_xai_import_loads_it_too(keras2):
    from tb_xai_plugin import cli

    path, manifest = keras2[0]["mobilenet_v2_nested"]
    assert model_info.weights_checksum(cli.load_model(path).get_weights()) == manifest["weights_sha256"]
    with pytest.raises(XaiError, match="getitem"):
        cli.load_model(keras2[0]["resnet50_caffe"][0])
