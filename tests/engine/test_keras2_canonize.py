"""The Keras 2 canonizer (backends/innvestigate/canonize.py): the rebuilt model computes the saved one, and explains more.

Small Keras 2 models (tests/engine/keras2_canonize_models.py, written once per module by a subprocess): a
Rescaling-first Sequential CNN, from-scratch (augmentation, Rescaling), transfer learning (preprocess_input ops, nested MobileNetV2, Dropout,
Dense(1)), EfficientNetB0 nested, a ConvNeXt-like block with a grouped conv, a small vision transformer; and two
whose preprocessing cannot fold (the input read twice, caffe-style channel flip), rebuilt without folding or kept.
Keras' own outputs (eager, as built) are the reference. Tolerances from float32
(tests/engine/float32_error.py): each layer's accumulation of n products carries n eps of relative rounding.
"""

import numpy as np
import pytest

from float32_error import EPS
from tb_xai_plugin import engine, model_info
from tb_xai_plugin.engine.backends.innvestigate import analyzers, canonize, loading
from tb_xai_plugin.errors import XaiError

pytestmark = pytest.mark.stack("keras2")

NAMES = ["rescaled_chain", "from_scratch", "transfer", "efficientnet_nested", "convnext_block", "small_vit"]
LRP_METHODS = [method for method in analyzers.ANALYZER_METHODS if method.startswith("lrp.")]
TARGET = {"kind": "class", "index": 1}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """({name: (path, manifest)}, {side: uint8 images}, {key: Keras 2's eager outputs}) from the Keras 2 stack."""
    import keras2_canonize_models

    return keras2_canonize_models.run(tmp_path_factory.mktemp("canonize"))


@pytest.fixture(scope="module")
def loaded(written):
    """{name: the engine's LoadedModel (canonized)}, loaded once."""
    return {name: engine.load_checkpoint(*pair) for name, pair in written[0].items()}


def images_for(written, model):
    """The uint8 images of the model's input size."""
    return written[1][model.input_shape[0]]


def saved_logits(path, raw, runs=1):
    """[float32 [N, K]] * runs: the logits of the saved model as Keras loads it (no rebuild) on raw inputs, own graph."""
    import tensorflow as tf

    graph = tf.Graph()
    session = tf.compat.v1.Session(graph=graph)
    try:
        keras_model = loading._load_keras(path, graph, session, False)
        with graph.as_default(), session.as_default(), loading.keras_session(session):
            logits = loading.strip_output_activation(keras_model).output
            return [session.run(logits, {keras_model.input: raw}) for _ in range(runs)]
    finally:
        session.close()


def accumulation_length(keras_model):
    """sum over weighted layers (nested ones too) of the products each output sums: kernel size / output channels."""
    total = 0
    for layer in keras_model.layers:
        if model_info.is_nested_model(layer):
            total += accumulation_length(layer)
        for weight in layer.weights:
            if "kernel" in weight.name:
                total += int(np.prod(weight.shape)) // int(weight.shape[-1]) + 1
    return total


@pytest.mark.parametrize("name", NAMES)
def test_the_rebuilt_model_computes_the_logits_keras_computes(written, loaded, name):
    model, expected = loaded[name], written[2][name + ":logits"]
    got = model.scores(model.preprocess(images_for(written, model)), "logit")[:, -expected.shape[1]:]  # binary: [-z, z]
    length = accumulation_length(model.keras_model)
    # Each layer's n products round by n eps relative to the activations' magnitude, which the logits' bounds here.
    assert np.abs(got - expected).max() <= 2 * length * EPS * max(np.abs(expected).max(), 1.0)


def test_the_saved_model_augments_in_graph_mode_and_the_rebuilt_one_does_not(written, loaded):
    model, raw = loaded["from_scratch"], images_for(written, loaded["from_scratch"]).astype(np.float32)
    saved = saved_logits(written[0]["from_scratch"][0], raw, runs=2)  # Keras 2.14's RandomFlip / RandomRotation augment
    assert np.abs(saved[0] - saved[1]).max() > 1e-3
    rebuilt = [model.scores(model.preprocess(raw), "logit") for _ in range(2)]
    np.testing.assert_array_equal(rebuilt[0], rebuilt[1])


@pytest.mark.parametrize("name", NAMES)
def test_folded_preprocessing_gives_the_first_real_layers_input(written, loaded, name):
    model, reference = loaded[name], written[2][name + ":first"]
    images = images_for(written, model)
    assert model.folded is not None and model.folded[0].shape == (3,)
    x = model.preprocess(images)
    scale, offset = model.folded
    # x * scale + offset: two roundings here, a few in Keras' chain (divide, subtract): eps relative to the terms.
    assert np.abs(x - reference).max() <= 8 * EPS * (np.abs(images * scale).max() + np.abs(offset).max())
    assert np.abs(reference).max() > 0


@pytest.mark.parametrize("name", NAMES)
def test_the_rebuilt_model_has_no_nested_model_identity_layer_or_grouped_conv(loaded, name):
    layers = loaded[name].keras_model.layers
    kinds = {type(layer).__name__ for layer in layers}
    assert not kinds & set(canonize.IDENTITY_TYPES + ("Rescaling", "Normalization", "TFOpLambda", "Functional", "Sequential"))
    assert not [layer for layer in layers if type(layer).__name__ == "Conv2D" and layer.groups > 1]
    assert len({layer.name for layer in layers}) == len(layers)


def test_a_layer_inside_the_nested_base_is_its_call_in_the_rebuilt_graph(written, loaded):
    model, expected = loaded["transfer"], written[2]["transfer:Conv1"]
    images = images_for(written, model)
    base = next(layer["name"] for layer in model.layers if layer["type"] == "Functional")
    x = model.preprocess(images)
    got = model.run(model.layer_output(base + "/Conv1"), {model.input: x})
    kernel = model.run(next(layer for layer in model.keras_model.layers if layer.name == "Conv1").kernel)
    assert np.abs(expected).max() > 0
    # Each output sums 27 products (rounded in Keras' eager kernel and in the graph's: 2 x 27 eps of sum |w x|), of
    # inputs that differ by the fold's rounding (8 eps of |x|, test_folded_...): both within sum |w| max |x|.
    bound = (2 * 27 + 8) * EPS * np.abs(x).max() * np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0).max()
    np.testing.assert_allclose(got, expected, rtol=0, atol=bound)
    with pytest.raises(XaiError, match="folded into the recorded preprocessing"):  # as the native backend says
        model.layer_output("tf.math.truediv")


@pytest.mark.parametrize("method", LRP_METHODS)
def test_every_lrp_method_explains_the_from_scratch_model(written, loaded, method):
    model = loaded["from_scratch"]
    maps = engine.attribute(model, method, images_for(written, model), target=TARGET).maps
    assert np.isfinite(maps).all()
    assert all(np.ptp(one) > 0 for one in maps)


@pytest.mark.parametrize("name", ["convnext_block", "small_vit"])
def test_the_gradient_is_the_logits_gradient_of_the_rebuilt_model(written, loaded, name):
    import tensorflow as tf

    model = loaded[name]
    images = images_for(written, model)
    maps = engine.attribute(model, "gradient", images, target=TARGET, params={"postprocess": "none"}).raw
    with model.in_graph():
        gradient = tf.gradients(model.logits_model.output[:, TARGET["index"]], model.input)[0]
    expected = model.run(gradient, {model.input: model.preprocess(images)})
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(maps, expected, rtol=0, atol=64 * EPS * np.abs(expected).max())


@pytest.mark.parametrize("name, method", [("from_scratch", "deeplift"), ("rescaled_chain", "pattern.attribution")])
def test_deeplift_and_patterns_see_the_rebuilt_layers(written, loaded, name, method):
    model = loaded[name]
    maps = engine.attribute(model, method, images_for(written, model), target=TARGET).maps
    assert np.isfinite(maps).all()
    assert all(np.ptp(one) > 0 for one in maps)


@pytest.mark.parametrize("name", ["rescaled_chain", "from_scratch"])
def test_the_first_real_layer_is_an_input_layer_for_innvestigate(loaded, name):
    from innvestigate.backend import checks

    model = loaded[name]
    with model.in_graph():
        first = [layer for layer in model.keras_model.layers[1:] if checks.is_input_layer(layer)]  # [0]: the InputLayer
    assert [layer.name for layer in first] == ["conv"]  # the flat rule of the sequential presets applies to it


def test_grad_cam_below_the_grouped_conv_works_after_a_forward_run(written, loaded):
    model = loaded["convnext_block"]
    images = images_for(written, model)
    model.scores(model.preprocess(images), "probability")  # the session has run the grouped conv's op
    # TF 2.14 cannot then differentiate Keras' jit-compiled grouped conv: "Connecting to invalid output 1 of ...".
    for layer in ("stem", None):
        maps = engine.attribute(model, "grad_cam", images, target=TARGET, layer=layer).maps
        assert np.isfinite(maps).all() and np.abs(maps).max() > 0
    assert np.ptp(engine.attribute(model, "gradient", images, target=TARGET).maps) > 0


@pytest.mark.parametrize("name", ["two_readers", "caffe_style"])
def test_a_preprocessing_that_cannot_fold_stays_in_the_model(written, loaded, name):
    model, expected = loaded[name], written[2][name + ":logits"]
    assert model.folded is None
    got = model.scores(model.preprocess(images_for(written, model)), "logit")
    assert np.abs(got - expected).max() <= 2 * accumulation_length(model.keras_model) * EPS * max(np.abs(expected).max(), 1.0)
    kinds = [type(layer).__name__ for layer in model.keras_model.layers]
    assert ("Rescaling" in kinds and "Dropout" not in kinds) if name == "two_readers" else "SlicingOpLambda" in kinds
