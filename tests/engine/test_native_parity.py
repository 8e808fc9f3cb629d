"""The native backend against the iNNvestigate backend on the same Keras 2 weights: every method both have.

Runs in the Keras 3 stack (.venv). The Keras 2 checkpoints (.h5) and the iNNvestigate backend's maps come
from .venv-innvestigate in one subprocess for the module (innvestigate_maps.py); here the native backend
reads the same .h5 files through Keras 3's legacy loader (an old logdir opened by the current stack) and
must give the same maps: max |diff| <= 1e-4 x max |map|. DeepLIFT, PatternNet and LRP have their own
parity tests (test_native_deeplift.py, test_native_pattern.py, test_native_lrp_parity.py).
"""

import numpy as np
import pytest

import innvestigate_maps
from tb_xai_plugin import engine

pytestmark = pytest.mark.stack("keras3")  # the native backend runs in the Keras 3 stack (.venv)

SCALE = {"type": "scale", "scale": 1 / 255.0, "offset": 0.0}
MODELS = {
    "chain": {"build": "parity_models:chain_cnn", "kwargs": {"seed": 5}, "preprocessing": SCALE},
    "mixed": {"build": "parity_models:mixed_net", "kwargs": {"seed": 6}},
}
GRID = {"segmentation": "grid", "segments": 16}  # SLIC may differ between the stacks' scikit-image versions
# (method, params, layer, the models it is compared on): mixed_net has tanh / sigmoid / ELU units, which the
# ReLU rules refuse.
CASES = [
    ("gradient", {"postprocess": "none"}, None, ("chain", "mixed")),
    ("gradient", {"postprocess": "abs"}, None, ("chain",)),
    ("smoothgrad", {"augment_by_n": 4, "postprocess": "none"}, None, ("chain", "mixed")),
    ("input_t_gradient", {}, None, ("chain", "mixed")),
    ("integrated_gradients", {"steps": 8, "reference": "zero"}, None, ("chain", "mixed")),
    ("integrated_gradients", {"steps": 8, "reference": "black"}, None, ("chain",)),
    ("deconvnet", {}, None, ("chain",)),
    ("guided_backprop", {}, None, ("chain",)),
    ("grad_cam", {}, None, ("chain",)),
    ("grad_cam", {}, "conv1", ("chain", "mixed")),  # mixed_net's last conv gives class 1 an all-zero map
    ("guided_grad_cam", {}, None, ("chain",)),
    ("guided_grad_cam", {}, "conv1", ("mixed",)),
    ("activation", {}, None, ("chain", "mixed")),
    ("occlusion", {"window": 4, "stride": 2, "score": "logit"}, None, ("chain", "mixed")),
    ("lime", dict(GRID, samples=64, score="logit"), None, ("chain",)),
    ("shapley_sampling", dict(GRID, permutations=2, score="logit"), None, ("chain",)),
    ("prediction_difference", {"window": 4, "stride": 4, "samples": 4, "sampling": "marginal"}, None, ("chain",)),
]
TARGET = {"kind": "class", "index": 1}


def images():
    """{model name: images}: uint8 16x16x3 for chain_cnn, float 10x10x2 for mixed_net."""
    rng = np.random.default_rng(21)
    return {"chain": rng.integers(0, 256, (3, 16, 16, 3)).astype(np.uint8), "mixed": rng.normal(size=(3, 10, 10, 2)).astype(np.float32)}


def jobs():
    """One job per (case, model)."""
    return [
        {"id": "%d-%s" % (index, name), "checkpoint": name, "method": method_id, "params": params, "layer": layer,
         "target": TARGET, "images": name + ".npy"}
        for index, (method_id, params, layer, names) in enumerate(CASES) for name in names
    ]  # fmt: skip


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """(checkpoints {name: (path, manifest)}, maps {job id: maps}) from the iNNvestigate backend."""
    directory = tmp_path_factory.mktemp("parity")
    for name, array in images().items():
        np.save(directory / (name + ".npy"), array)
    return innvestigate_maps.run(directory, MODELS, jobs())


@pytest.fixture(scope="module")
def native(reference):
    """The same Keras 2 .h5 checkpoints loaded by this stack (the native backend, Keras 3's legacy loader)."""
    return {name: engine.load_checkpoint(*checkpoint) for name, checkpoint in reference[0].items()}


def test_keras2_checkpoints_open_in_the_keras3_stack(native, reference):
    for name, model in native.items():
        manifest = reference[0][name][1]
        assert model.backend == "native" and manifest["format"] == "h5" and manifest["versions"]["keras"].startswith("2")
        x = model.preprocess(images()[name])
        assert engine.predict(model, images()[name], return_probs=True)["probs"].shape == (3, 3 if name == "mixed" else 4)
        assert np.isfinite(model.scores(x, "logit")).all()


@pytest.mark.parametrize("job", jobs(), ids=lambda job: "%s-%s" % (job["method"], job["id"]))
def test_the_native_maps_equal_the_innvestigate_backend_s(native, reference, job):
    model = native[job["checkpoint"]]
    out = engine.attribute(model, job["method"], images()[job["checkpoint"]], params=job["params"], target=TARGET, layer=job["layer"])
    got = out.raw if out.raw is not None else out.maps
    want = reference[1][job["id"]]
    assert got.shape == want.shape
    assert np.abs(want).max() > 1e-6, "a trivial map proves nothing"
    assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
