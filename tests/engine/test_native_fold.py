"""The native backend folds a model's leading in-model preprocessing into the recorded preprocessing (issue 17, item 2).

A loaded model's keras_model starts at its first real layer and model.folded = (scale, offset) holds
what it took out (native/folding.py); preprocess applies it. Checked on a Rescaling-first CNN behind
augmentation layers, Rescaling + Normalization, the TF transfer-learning model (MobileNetV2 alpha 0.35,
preprocess_input's x / 127.5 - 1 ops, Dropout, Dense(1)) and EfficientNetB0 nested (its own Rescaling
and Normalization, inside the base).

Tolerances from float32 (tests/engine/float32_error.py): the chain x -> ... -> u and the folded
x * scale + offset each round every step once (eps/2 of a term no larger than |x scale| + |offset|),
so |du| <= (k + 4) eps (max |x scale| + max |offset|) for a chain of k steps; the rebuilt model runs
the very same float32 ops on u, so its outputs move by first order |dz| <= ||dz/du||_1 max |du|.
"""

import copy
import hashlib

import numpy as np
import pytest

from conftest import write_checkpoint
from float32_error import EPS
from tb_xai_plugin import engine, model_info
from tb_xai_plugin.errors import XaiError

pytestmark = pytest.mark.stack("keras3")  # the native backend's canonizer

SMALL, NESTED = 16, 32
MEAN, VARIANCE = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]) ** 2  # the ImageNet statistics


def small_body():
    """Conv2D(relu, 'same') -> GAP -> Dense(3): the layers the small models' preprocessing feeds."""
    import keras

    keras.utils.set_random_seed(7)
    L = keras.layers
    return [L.Conv2D(4, 3, padding="same", activation="relu"), L.GlobalAveragePooling2D(), L.Dense(3)]


def augmented_rescaling():
    """RandomFlip -> RandomRotation -> Rescaling(1/255) -> the small body ("image classification from scratch")."""
    import keras

    L = keras.layers
    inputs = keras.Input((SMALL, SMALL, 3))
    h = L.Rescaling(1 / 255.0)(L.RandomRotation(0.1)(L.RandomFlip("horizontal")(inputs)))
    return _then(inputs, h, small_body(), "augmented_rescaling"), 1


def rescaling_normalization():
    """Rescaling(1/255) -> Normalization(ImageNet mean, variance) -> the small body."""
    import keras

    L = keras.layers
    inputs = keras.Input((SMALL, SMALL, 3))
    h = L.Normalization(mean=MEAN, variance=VARIANCE)(L.Rescaling(1 / 255.0)(inputs))
    return _then(inputs, h, small_body(), "rescaling_normalization"), 3


def sequential_softmax():
    """Sequential: Rescaling(1/127.5, offset -1) -> Conv2D(relu) -> MaxPooling2D -> GAP -> Dense(3, softmax)."""
    import keras

    keras.utils.set_random_seed(7)
    L = keras.layers
    body = [L.Conv2D(4, 3, activation="relu"), L.MaxPooling2D(), L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")]
    return keras.Sequential([keras.Input((SMALL, SMALL, 3)), L.Rescaling(1 / 127.5, offset=-1.0)] + body, name="sequential_softmax"), 2


def transfer_learning():
    """The TF transfer-learning tutorial: preprocess_input (x / 127.5 - 1) -> MobileNetV2(0.35) -> GAP -> Dropout -> Dense(1)."""
    import keras

    keras.utils.set_random_seed(7)
    L = keras.layers
    base = keras.applications.MobileNetV2(input_shape=(NESTED, NESTED, 3), include_top=False, weights=None, alpha=0.35)
    inputs = keras.Input((NESTED, NESTED, 3))
    h = base(keras.applications.mobilenet_v2.preprocess_input(inputs), training=False)
    outputs = L.Dense(1)(L.Dropout(0.2)(L.GlobalAveragePooling2D()(h)))
    return keras.Model(inputs, outputs, name="transfer_learning"), 2


def efficientnet_nested():
    """EfficientNetB0 (weights=None, its Normalization given the ImageNet statistics) -> GAP -> Dense(3)."""
    import keras

    keras.utils.set_random_seed(7)
    base = keras.applications.EfficientNetB0(input_shape=(NESTED, NESTED, 3), include_top=False, weights=None)
    normalization = next(layer for layer in base.layers if type(layer).__name__ == "Normalization")
    mean, variance, count = normalization.weights
    normalization.set_weights([MEAN.reshape(mean.shape), VARIANCE.reshape(variance.shape), np.zeros(count.shape)])
    inputs = keras.Input((NESTED, NESTED, 3))
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(base(inputs)))
    return keras.Model(inputs, outputs, name="efficientnet_nested"), 3


def _then(inputs, h, layers, name):
    """keras.Model(inputs, layers applied to h in turn)."""
    import keras

    for layer in layers:
        h = layer(h)
    return keras.Model(inputs, h, name=name)


BUILDERS = {f.__name__: f for f in (augmented_rescaling, rescaling_normalization, sequential_softmax, transfer_learning, efficientnet_nested)}
BINARY = ("transfer_learning",)  # logged as the tutorial's binary_logit head: the engine explains [-z, z]
FIRST_REAL = {  # the type of the first real layer each model's input meets after the fold
    "augmented_rescaling": "Conv2D", "rescaling_normalization": "Conv2D", "sequential_softmax": "Conv2D",
    "transfer_learning": "Conv2D", "efficientnet_nested": "ZeroPadding2D",
}
FOLDED_LAYER = {"augmented_rescaling": "Rescaling", "rescaling_normalization": "Normalization", "sequential_softmax": "Rescaling",
                "efficientnet_nested": "Rescaling"}


@pytest.fixture(scope="module", params=list(BUILDERS))
def loaded(request, tmp_path_factory):
    """(name, the engine's model, chain length k, the file's sha256 and manifest before loading)."""
    keras_model, chain = BUILDERS[request.param]()
    path, manifest = write_checkpoint(keras_model, tmp_path_factory.mktemp(request.param))
    if request.param in BINARY:
        manifest.update(head="binary_logit", num_classes=2, class_names=["cat", "dog"])
    before = (_sha256(path), copy.deepcopy(manifest))
    model = engine.load_checkpoint(path, manifest)
    assert (_sha256(path), manifest) == before, "loading must leave the user's file and manifest as they were"
    return request.param, model, chain


def _sha256(path):
    """The file's sha256."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def images(side, n=2):
    """n random uint8 images side x side x 3."""
    return np.random.default_rng(3).integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)


def first_real_input(model, x):
    """(u, the walk step that reads it): the value the saved model's first real layer reads for stored images x."""
    from tb_xai_plugin.engine import checkpoint
    from tb_xai_plugin.engine.backends.native.walk import Walk

    body = {id(step.layer) for step in Walk(model.keras_model).steps}
    walk = Walk(model.saved_model)
    first = next(step for step in walk.steps if id(step.layer) in body)
    values = walk.forward(checkpoint.preprocess_array(x.astype(np.float32), model.manifest["preprocessing"]))
    return np.asarray(values[first.inputs[0]]), first


def test_the_model_starts_at_its_first_real_layer_with_the_same_layer_objects(loaded):
    from tb_xai_plugin.engine import sanity
    from tb_xai_plugin.engine.backends.native.walk import Walk

    name, model, _ = loaded
    assert model.folded is not None, "%s has leading preprocessing to fold" % name
    body, saved = Walk(model.keras_model).steps, Walk(model.saved_model).steps
    assert type(body[0].layer).__name__ == FIRST_REAL[name]
    kinds = {type(step.layer).__name__ for step in body}
    assert not kinds & {"Rescaling", "Normalization", "RandomFlip", "TrueDivide", "Subtract"}, kinds
    assert {id(step.layer) for step in body} <= {id(step.layer) for step in saved}, "no layer copies"
    assert Walk(model.logits_model).steps[0].layer is body[0].layer
    randomized = {type(layer).__name__ for layer in sanity.weighted_layers(model.keras_model)}  # the sanity check's stages
    assert "Normalization" not in randomized, "the folded statistics are not the model's to randomize"


def test_folded_composes_the_chain(loaded):
    """preprocess(images) == the value the original model's first real layer reads, within the chain's rounding."""
    name, model, chain = loaded
    x = images(model.input_shape[0])
    u, _ = first_real_input(model, x)
    scale, offset = model.folded
    bound = (chain + 4) * EPS * (np.abs(x * scale).max() + np.abs(offset).max())
    np.testing.assert_allclose(model.preprocess(x), u, rtol=0, atol=bound)


def test_the_rebuilt_model_gives_the_original_outputs(loaded):
    """keras_model(preprocess(x)) == saved_model(x) to first order in the preprocessing's rounding."""
    import tensorflow as tf

    from tb_xai_plugin.engine import checkpoint

    name, model, chain = loaded
    x = images(model.input_shape[0])
    original = np.asarray(model.saved_model(checkpoint.preprocess_array(x.astype(np.float32), model.manifest["preprocessing"]), training=False))
    u = tf.convert_to_tensor(model.preprocess(x))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(u)
        rebuilt = model.keras_model(u, training=False)
        outputs = [rebuilt[:, j] for j in range(rebuilt.shape[-1])]
    slopes = np.stack([np.abs(tape.gradient(z, u).numpy()).sum(axis=(1, 2, 3)) for z in outputs], axis=1)  # ||dz_j/du||_1 [N, K]
    scale, offset = model.folded
    du = (chain + 4) * EPS * (np.abs(x * scale).max() + np.abs(offset).max())
    assert np.abs(original).max() > 0
    assert np.all(np.abs(np.asarray(rebuilt) - original) <= slopes * du + 2 * EPS * np.abs(original))  # + each run's last rounding


def test_the_body_computes_what_the_saved_model_computes_from_the_same_value(loaded):
    """keras_model(u) == saved_model(x) bit for bit for u the saved model's own value there: the same float32 ops on the same values."""
    _, model, _ = loaded
    x = images(model.input_shape[0])
    u, _ = first_real_input(model, x)
    np.testing.assert_array_equal(np.asarray(model.keras_model(u, training=False)), np.asarray(model.saved_model(x.astype(np.float32), training=False)))


def test_a_folded_layer_is_refused_as_folded(loaded):
    """Choosing a folded preprocessing layer (for activation maps, Grad-CAM) says it was folded, not "unknown"."""
    from tb_xai_plugin.engine.backends.native.walk import Walk

    name, model, _ = loaded
    if name not in FOLDED_LAYER:  # preprocess_input's op nodes are no layers
        return
    layer = next(step.layer for step in Walk(model.saved_model).steps if type(step.layer).__name__ == FOLDED_LAYER[name])
    path = layer.name if name != "efficientnet_nested" else "%s/%s" % (model.saved_model.layers[1].name, layer.name)
    with pytest.raises(XaiError, match="folded into the recorded preprocessing"):
        model.layer_and_logits(path)
    if name == "efficientnet_nested":  # a layer inside the rebuilt base is still found by its path, the same object
        inner = "%s/stem_conv" % model.saved_model.layers[1].name
        assert model_info.find_nested_layer(model.keras_model, inner) is model_info.find_nested_layer(model.saved_model, inner) is not None


@pytest.fixture(scope="module")
def rescaling_first(tmp_path_factory):
    """(the engine's model of rescaling_normalization, the plain body model over the same layers)."""
    import keras

    keras_model, _ = rescaling_normalization()
    model = engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path_factory.mktemp("rescaling_first")))
    inputs = keras.Input((SMALL, SMALL, 3))
    body = _then(inputs, inputs, keras_model.layers[-3:], "body")
    return model, body


def test_gradient_explains_the_first_real_layer(rescaling_first):
    """The engine's gradient == d logit / du of the plain body at u = preprocess(images) (not d logit / d pixel)."""
    import tensorflow as tf

    from tb_xai_plugin.engine.backends.native import gradients

    model, body = rescaling_first
    x, targets = model.preprocess(images(SMALL)), np.array([0, 2])
    ours = gradients.gradient_of(model)(x, targets)
    u = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(u)
        chosen = tf.gather(body(u, training=False), targets, axis=1, batch_dims=1)
    expected = tape.gradient(chosen, u).numpy()
    accumulated = 3 + SMALL * SMALL + 3 * 3 * 4  # the dense's, the pooling's and the convolution's sums, backwards
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(ours, expected, rtol=0, atol=2 * accumulated * EPS * np.abs(expected).max())


def test_pattern_methods_apply_once_the_preprocessing_is_folded(rescaling_first):
    """PatternNet needs a chain of Dense / Conv2D layers: a Rescaling + Normalization in front no longer refuses it."""
    model, _ = rescaling_first
    applicable = engine.applicable_methods(model)
    assert applicable["pattern.net"]["ok"] and applicable["pattern.attribution"]["ok"], applicable["pattern.net"]


def test_deep_taylor_bounded_gets_the_bounds_through_preprocess(rescaling_first):
    """deep_taylor.bounded (pixels in [0, 255]) == the plain body's with per-channel bounds (0 - mean) / std, (1 - mean) / std."""
    from tb_xai_plugin.engine.backends.native import lrp, lrp_methods

    model, body = rescaling_first
    x, targets = images(SMALL), np.array([0, 2])
    ours = lrp_methods.compute("deep_taylor.bounded", model, model.preprocess(x), targets, {"low": 0.0, "high": 255.0}, None, None, None)
    std = np.sqrt(VARIANCE)
    bounds = (tuple((-MEAN / std).tolist()), tuple(((1 - MEAN) / std).tolist()))
    expected = lrp.explain(body, model.preprocess(x), targets, "deep_taylor.bounded", {}, bounds)
    accumulated = 3 + SMALL * SMALL + 3 * 3 * 3  # the sums of the rules, layer by layer
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(ours, expected, rtol=0, atol=2 * accumulated * EPS * np.abs(expected).max())
