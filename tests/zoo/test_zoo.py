"""The model zoo: every method on the models people train, in this interpreter's stack (issue 17).

Each cell (model x method) must be a finite, non-constant map for every image, or a refusal before
compute whose reason names a layer (by name or type) of the model. The models are logged with
summary.checkpoint and explained by the engine in separate processes (run_zoo.py), as TensorBoard does.

    make test:           a quick zoo (QUICK[this stack]: in Keras 3 two small models with every method, ResNet50 and
                         the transfer-learning model with a few; in Keras 2 the models its canonizer and rules fix)
    TB_XAI_ZOO=full:     every model with every method, and this stack's matrix written into docs/models.md
    TB_XAI_ZOO=full TB_XAI_ZOO_MODELS=a,b:   models a and b with every method; only their rows are replaced
"""

import json
import os
import subprocess
import sys

import pytest

import zoo_matrix
from tb_xai_plugin import model_info
from tb_xai_plugin.engine import backends

HERE = os.path.dirname(os.path.abspath(__file__))
FULL = os.environ.get("TB_XAI_ZOO") == "full"
SUBSET = [name for name in os.environ.get("TB_XAI_ZOO_MODELS", "").split(",") if name]
STACK = "keras2" if backends.innvestigate_available() else "keras3"  # the iNNvestigate stack is the Keras 2 one
pytestmark = pytest.mark.timeout(3600 if FULL else 900)  # the fixture's two processes count towards the first test
# Keras 3: ResNet50's methods: after the first iNNvestigate analyzer, the next ones failed with a KeyError (issue 17).
# The transfer-learning model's default layer is inside its nested MobileNetV2 (a "base/layer" path).
# The CIFAR CNN and the multi-label head are in the full zoo; tests/engine and tests/heads cover their kind in make test.
# Keras 2: what its canonizer and LRP rules fix: the from-scratch model's Rescaling and augmentation, the transfer-learning
# model's nested base and preprocess_input ops, ConvNeXt's grouped convolution (gradients), the ViT's repeated names.
QUICK = {
    "keras3": {
        "from_scratch": None, "small_vit": None,
        "resnet50": ["gradient", "deconvnet", "lrp.epsilon", "grad_cam", "occlusion"],
        "transfer_learning": ["grad_cam", "activation", "guided_grad_cam", "gradient", "lrp.epsilon"],
    },
    "keras2": {
        "from_scratch": ["lrp.epsilon", "lrp.sequential_preset_a_flat", "deeplift", "gradient"],
        "transfer_learning": ["grad_cam", "activation", "lrp.epsilon"],
        "convnext_tiny": ["gradient", "smoothgrad", "integrated_gradients"],
        "small_vit": ["gradient", "smoothgrad"],
    },
}[STACK]  # fmt: skip


def _run(*args):
    """Run run_zoo.py in this interpreter; its stderr is shown if it fails."""
    done = subprocess.run([sys.executable, os.path.join(HERE, "run_zoo.py"), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """{"stack", "models": {name: {method: cell}}, "layers": {name: [...]}} for this stack's zoo."""
    logdir = tmp_path_factory.mktemp("zoo")
    label = zoo_matrix.run_label()  # when the run starts, and the commit its code is at
    chosen = ({name: None for name in SUBSET} if SUBSET else {}) if FULL else QUICK
    _run("log", str(logdir), *chosen)
    out = logdir / "zoo.json"
    _run("explain", str(logdir), str(out), json.dumps(chosen))
    result = json.loads(out.read_text())
    if FULL:
        zoo_matrix.write_section(result, label)
    return result


def _names_a_layer(reason, layers):
    """True if `reason` names one of the model's layers by name (inside a nested base: path or own name) or by type."""
    names = {name for layer in layers for name in (layer["name"], layer["name"].rsplit("/", 1)[-1])}
    return any("'%s'" % name in reason for name in names) or any(layer["type"] in reason for layer in layers)


@pytest.mark.parametrize("name", sorted((SUBSET or zoo_matrix.MODELS) if FULL else QUICK))
def test_every_method_gives_a_map_or_a_reason_naming_the_layer(zoo, name):
    cells = zoo["models"][name]
    assert cells, "no method ran on %s" % name
    problems = []
    for method_id, cell in cells.items():
        if cell["state"] == "failed":
            problems.append("%s: %s" % (method_id, cell["detail"]))
        elif cell["state"] == "refused" and not _names_a_layer(cell["detail"], zoo["layers"].get(name, [])):
            problems.append("%s refused without naming a layer: %s" % (method_id, cell["detail"]))
    assert not problems, "\n".join(problems)


@pytest.mark.skipif(bool(FULL and SUBSET and "transfer_learning" not in SUBSET), reason="a subset without the model")
def test_a_nested_base_lists_its_layers_by_path_and_the_default_is_inside(zoo):
    layers = zoo["layers"]["transfer_learning"]
    base = next(layer["name"] for layer in layers if layer["type"] == "Functional")
    inside = [layer for layer in layers if layer["name"].startswith(base + "/")]
    assert {"Conv2D", "DepthwiseConv2D", "ReLU", "BatchNormalization"} <= {layer["type"] for layer in inside}
    default = model_info.default_layer(layers)
    assert default.startswith(base + "/") and next(layer for layer in inside if layer["name"] == default)["conv"]
    assert all(zoo["models"]["transfer_learning"][m]["state"] == "works" for m in ("grad_cam", "activation"))
