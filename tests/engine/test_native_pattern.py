"""Native PatternNet / PatternAttribution: the same patterns and maps as the iNNvestigate backend on the same
Keras 2 weights and fitting set, and the worker's fit-then-compute on a native model.

Runs in the Keras 3 stack (.venv); the iNNvestigate backend's patterns and maps come from
.venv-innvestigate in a subprocess (innvestigate_maps.py), once for the module.
"""

import hashlib
import io
import multiprocessing

import numpy as np
import pytest
from conftest import write_checkpoint

import innvestigate_maps
import parity_models
from tb_xai_plugin import engine
from tb_xai_plugin.engine import pattern_fit
from tb_xai_plugin.engine.backends.native import pattern
from tb_xai_plugin.plugin import worker_main

pytestmark = pytest.mark.stack("keras3")  # the native backend runs in the Keras 3 stack (.venv)

SCALE = {"type": "scale", "scale": 1 / 255.0, "offset": 0.0}
CHECKPOINTS = {"chain": {"build": "parity_models:chain_cnn", "kwargs": {"seed": 4}, "preprocessing": SCALE}}
FIT, EXPLAIN = np.random.default_rng(11).integers(0, 256, (2, 24, 16, 16, 3)).astype(np.uint8)
EXPLAIN = EXPLAIN[:5]


def parity_jobs():
    """Both methods x both estimators, for target class 2 and for each image's predicted class."""
    targets = {"c2": {"kind": "class", "index": 2}, "pred": {"kind": "predicted"}}
    return [
        {"id": "%s-%s-%s" % (method, estimator, t), "checkpoint": "chain", "method": method, "params": {"estimator": estimator},
         "target": target, "images": "explain.npy", "fit": "fit.npy"}
        for method in ("pattern.net", "pattern.attribution") for estimator in ("relu", "linear") for t, target in targets.items()
    ]  # fmt: skip


@pytest.fixture(scope="module")
def innvestigate_reference(tmp_path_factory):
    """(checkpoints {name: (path, manifest)}, {job id: maps, "<id>:<estimator>:<layer>": pattern}) from the iNNvestigate backend."""
    directory = tmp_path_factory.mktemp("innvestigate")
    np.save(directory / "fit.npy", FIT)
    np.save(directory / "explain.npy", EXPLAIN)
    return innvestigate_maps.run(directory, CHECKPOINTS, parity_jobs())


@pytest.fixture(scope="module")
def keras2_chain(innvestigate_reference):
    """The Keras 2 .h5 checkpoint the reference used, loaded by the native backend."""
    model = engine.load_checkpoint(*innvestigate_reference[0]["chain"])
    assert model.backend == "native" and model.manifest["format"] == "h5"
    return model


def test_fits_the_same_patterns_as_the_innvestigate_backend(innvestigate_reference, keras2_chain):
    expected = innvestigate_reference[1]
    fitted = pattern.fit_patterns(keras2_chain, FIT)
    assert fitted.count == len(FIT) and sorted(fitted.linear) == ["conv1", "conv2", "dense1", "logits"]
    job = parity_jobs()[0]["id"]
    for estimator in ("linear", "relu"):
        for name, got in getattr(fitted, estimator).items():
            want = expected["%s:%s:%s" % (job, estimator, name)]
            assert np.abs(want).max() > 0
            assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), (estimator, name)


def test_maps_match_the_innvestigate_backend_on_the_same_weights_and_fitting_set(innvestigate_reference, keras2_chain):
    expected = innvestigate_reference[1]
    pattern.fit_patterns(keras2_chain, FIT)
    for job in parity_jobs():
        got = engine.attribute(keras2_chain, job["method"], EXPLAIN, params=job["params"], target=job["target"]).raw
        want = expected[job["id"]]
        assert np.abs(want).max() > 1e-6, job["id"]
        assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max(), job["id"]
    net, attribution = (expected["pattern.%s-relu-c2" % kind] for kind in ("net", "attribution"))
    assert not np.allclose(net, attribution, atol=1e-3 * np.abs(net).max())  # two different backward passes compared


def sample_set(tmp_path, images):
    """{"path", "sha256"} of a sample set .npz holding `images` and zero labels, as the worker reads it."""
    buffer = io.BytesIO()
    np.savez(buffer, images=images, labels=np.zeros(len(images), np.int64))
    path = tmp_path / ("samples-%d.npz" % len(images))
    path.write_bytes(buffer.getvalue())
    return {"path": str(path), "sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}


def fit_request(checkpoint, samples, indices, cap):
    """A worker attribute message for pattern.net with the fit on the sample set."""
    return {
        "op": "attribute", "checkpoint": {"path": checkpoint[0], "manifest": checkpoint[1]}, "samples": samples,
        "indices": indices, "method": "pattern.net", "params": {}, "target": {"kind": "class", "index": 1},
        "layer": None, "neuron": None, "seed": 0, "fit": {"cap": cap},
    }  # fmt: skip


def test_the_worker_fits_a_native_model_on_the_sample_set_then_computes(tmp_path):
    checkpoint = write_checkpoint(parity_models.chain_cnn(seed=6), tmp_path / "ckpt", preprocessing=SCALE)
    ours, theirs = multiprocessing.Pipe()
    worker = worker_main.Worker(theirs, {})
    whole, other = sample_set(tmp_path, FIT), sample_set(tmp_path, FIT[:10])
    kind, _, first = worker.answer(1, fit_request(checkpoint, whole, [3, 4], cap=16))
    assert kind == "result", first
    model = worker.model({"path": checkpoint[0], "manifest": checkpoint[1]})
    assert model.backend == "native"
    held = model.cache[pattern_fit.FIT_KEY]
    assert held.count == 16  # cap 16 of 24 samples, evenly spaced
    direct = engine.load_checkpoint(*checkpoint)
    pattern.fit_patterns(direct, FIT[worker_main.pattern_fit_indices(len(FIT), 16)])
    expected = engine.attribute(direct, "pattern.net", FIT[[3, 4]], target={"kind": "class", "index": 1}).maps
    np.testing.assert_allclose(first["maps"], expected, rtol=0, atol=1e-5 * np.abs(expected).max())
    worker.answer(2, fit_request(checkpoint, whole, [5], cap=16))
    assert model.cache[pattern_fit.FIT_KEY] is held  # the same sample set: no refit
    worker.answer(3, fit_request(checkpoint, other, [5], cap=16))
    assert model.cache[pattern_fit.FIT_KEY].count == 10
    progress = []
    while ours.poll():
        progress.append(ours.recv()[2])
    # (fit, then maps) as one total: 16 fitted + 2 maps; the same set again: 1 map only; another set: 10 + 1
    assert progress == [(16, 18), (18, 18), (17, 17), (10, 11), (11, 11)]


def test_a_sequential_model_gives_the_maps_of_its_functional_twin(tmp_path):
    import keras

    def layers():
        return [keras.layers.Conv2D(3, 3, activation="relu"), keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                keras.layers.Dense(5), keras.layers.ReLU(), keras.layers.Dense(2, activation="softmax")]  # fmt: skip

    sequential = parity_models.weighted(keras.Sequential([keras.Input((8, 8, 1))] + layers()), seed=8)
    inputs = keras.Input((8, 8, 1))
    h = inputs
    for layer in layers():
        h = layer(h)
    functional = keras.Model(inputs, h)
    functional.set_weights(sequential.get_weights())
    x = np.random.default_rng(9).normal(size=(40, 8, 8, 1)).astype(np.float32)
    maps = []
    for name, keras_model in (("sequential", sequential), ("functional", functional)):
        model = engine.load_checkpoint(*write_checkpoint(keras_model, tmp_path / name))
        before = model.keras_model.get_weights()
        pattern.fit_patterns(model, x)
        maps.append([engine.attribute(model, m, x[:4]).raw for m in ("pattern.net", "pattern.attribution")])
        for was, now in zip(before, model.keras_model.get_weights()):
            np.testing.assert_array_equal(now, was)  # the patterns replaced the weights in the backward pass only
    for got, want in zip(*maps):
        assert np.abs(want).max() > 0
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())
