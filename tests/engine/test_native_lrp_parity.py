"""Native LRP and Deep Taylor match iNNvestigate 2.1.2 map for map (Keras 3 stack, `.venv`).

The fixtures in tests/fixtures/lrp/ were written in `.venv-innvestigate` by make_fixtures.py: Keras 2
models saved as .h5 (read here by Keras 3's legacy loader, as old checkpoints are) and the engine's
iNNvestigate backend's map for every LRP rule, preset and Deep Taylor variant, on the model itself or
on its twin (Rescaling moved into the input, nested base flattened, BatchNorm folded). Every map must
match within max|diff| <= 1e-4 * max|map|: float32 sums of a few hundred products reordered differ by
~1e-6 relative; the epsilon- and z-rule divisions of near-cancelling sums amplify that by up to ~100.
"""

import glob
import json
import os

import numpy as np
import pytest

native_only = pytest.mark.stack("keras3")  # the native backend runs in the Keras 3 stack (.venv)

FIXTURES = os.path.join(os.path.dirname(__file__), os.pardir, "fixtures", "lrp")
NAMES = sorted(os.path.basename(p)[:-4] for p in glob.glob(os.path.join(FIXTURES, "*.npz")))
TOLERANCE = 1e-4


# Keys Keras 2.14 writes into DepthwiseConv2D / SeparableConv2D configs that Keras 3 refuses.
KERAS2_ONLY_KEYS = ("groups", "kernel_initializer", "kernel_regularizer", "kernel_constraint")


def tolerant(cls):
    """A subclass of layer class `cls`, of the same name, that ignores KERAS2_ONLY_KEYS."""
    def __init__(self, **kwargs):
        cls.__init__(self, **{k: v for k, v in kwargs.items() if k not in KERAS2_ONLY_KEYS})

    return type(cls.__name__, (cls,), {"__init__": __init__})


def renumber_nested_calls(path, out):
    """Copy the .h5 at `path` to `out` with Keras 2's node numbers of nested-model calls made Keras 3's (one less).

    Keras 2 counts a nested model's own construction as its node 0, so its first call is node 1;
    Keras 3 counts calls only and refuses the file ("Invalid Functional model configuration").
    """
    import shutil

    import h5py

    shutil.copyfile(path, out)
    with h5py.File(out, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        models = {l["config"]["name"] for l in config["config"]["layers"] if l["class_name"] in ("Functional", "Model", "Sequential")}
        for layer in config["config"]["layers"]:
            for node in layer["inbound_nodes"]:
                for entry in node:
                    if entry[0] in models:
                        entry[1] -= 1
        f.attrs["model_config"] = json.dumps(config)


def load(name, tmp_path):
    """(Keras 3 model from <name>.h5, the fixture arrays)."""
    import keras

    custom = {n: tolerant(getattr(keras.layers, n)) for n in ("DepthwiseConv2D", "SeparableConv2D")}
    path = str(tmp_path / (name + ".h5"))
    renumber_nested_calls(os.path.join(FIXTURES, name + ".h5"), path)
    model = keras.models.load_model(path, compile=False, custom_objects=custom)
    return model, dict(np.load(os.path.join(FIXTURES, name + ".npz")))


@native_only
def test_fixtures_cover_the_required_architectures():
    """At least the six architectures of issue 14, and every LRP / Deep Taylor method id in each.

    mobilenet lacks lrp.flat: its reference twin replaces the depthwise convolutions with full ones,
    on which the flat rule differs (docs/engine.md, LRP).
    """
    from tb_xai_plugin.engine.backends.native import lrp

    assert {"vgg", "resnet", "densenet", "mobilenet", "rescaling", "nested"} <= set(NAMES)
    for name in NAMES:
        methods = {k.split("|")[1] for k in np.load(os.path.join(FIXTURES, name + ".npz")).files if k.startswith("map|")}
        assert methods == set(lrp.METHOD_IDS) - ({"lrp.flat"} if name == "mobilenet" else set()), name


@native_only
@pytest.mark.parametrize("name", NAMES)
def test_every_map_matches_innvestigate(name, tmp_path):
    """Each fixture map is reproduced by native LRP on the Keras 3 model within 1e-4 of its largest value."""
    from tb_xai_plugin.engine.backends.native import lrp

    model, data = load(name, tmp_path)
    if name == "nested":
        assert any(hasattr(layer, "layers") for layer in model.layers), "the base network must stay nested in Keras 3"
    bounds = tuple(float(b) for b in data["bounds"])
    failures = []
    for key in sorted(k for k in data if k.startswith("map|")):
        _, method, params = key.split("|")
        reference = data[key]
        ours = lrp.explain(model, data["x"], data["targets"], method, json.loads(params), bounds)
        scale = np.abs(reference).max()
        assert scale > 0, "%s: empty reference map" % key
        error = np.abs(ours - reference).max() / scale
        if not error <= TOLERANCE:
            failures.append("%s: max|diff| = %.2g x max|map|" % (key, error))
    assert not failures, "\n".join(failures)


@native_only
def test_compiled_function_equals_eager_walk(tmp_path):
    """The tf.function the engine runs gives the eager walk's maps (resnet: folding, Add, pooling)."""
    from tb_xai_plugin.engine.backends.native import lrp

    model, data = load("resnet", tmp_path)
    prepared = lrp.prepare(model)
    for method in ("lrp.sequential_preset_b_flat", "deep_taylor.bounded"):
        eager = lrp.explain(model, data["x"], data["targets"], method, {}, (-1.0, 1.0))
        compiled = lrp.relevance_function(prepared, method, {}, (-1.0, 1.0))(data["x"], data["targets"].astype(np.int32)).numpy()
        np.testing.assert_allclose(compiled, eager, rtol=0, atol=1e-5 * np.abs(eager).max())


@pytest.mark.stack("keras2")  # the iNNvestigate backend runs in the Keras 2 stack (.venv-innvestigate)
@pytest.mark.parametrize("name", ["vgg", "densenet"])
def test_the_references_are_what_the_innvestigate_backend_gives_today(name):
    """The fixtures of the models iNNvestigate takes as they are: recomputed by today's iNNvestigate backend, same maps."""
    import importlib.util

    import tensorflow as tf

    spec = importlib.util.spec_from_file_location("make_fixtures", os.path.join(FIXTURES, "make_fixtures.py"))
    make_fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_fixtures)
    data = dict(np.load(os.path.join(FIXTURES, name + ".npz")))
    model = tf.keras.models.load_model(os.path.join(FIXTURES, name + ".h5"), compile=False)
    maps = make_fixtures.all_maps(model, data["x"], data["targets"], tuple(float(b) for b in data["bounds"]))
    for key, reference in maps.items():
        np.testing.assert_allclose(data[key], reference, rtol=0, atol=TOLERANCE * np.abs(reference).max(), err_msg=key)
