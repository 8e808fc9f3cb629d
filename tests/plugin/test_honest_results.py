"""POST attributions tells each map's own range, and never serves a result computed by other code:
cache keys hold the method's version and the library versions (through a real worker)."""

import dataclasses

import numpy as np
import pytest

from tb_xai_plugin.engine import registry
from tb_xai_plugin.plugin import encoding, versions
from tests.plugin.conftest import CONST_VALUES, body_of

CNN = {"run": "cnn", "step": 1}
VAL = {"run": "cnn", "name": "val"}
CONST = {"run": "a", "name": "const"}


def attribute(served, **overrides):
    """The cells of POST attributions (gradient of cnn@1 on val #0 unless overridden), and how many tasks it started."""
    body = {"models": [CNN], "samples": VAL, "indices": [0], "methods": [{"id": "gradient", "params": {}}]}
    body.update(overrides)
    before = served.plugin.pool.stats["submitted"]
    response = served.post("attributions", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return body_of(response), served.plugin.pool.stats["submitted"] - before


def test_each_map_has_its_own_range(served):
    # model b: logit 1 = mean of the image; input x gradient of it = v / 784 everywhere, v = 1 .. 4
    body, _ = attribute(
        served, models=[{"run": "b", "step": 0}], samples=CONST, indices=[0, 3],
        methods=[{"id": "input_t_gradient", "params": {}}], target={"kind": "class", "index": 1},
    )  # fmt: skip
    (cell,) = body["cells"]
    maps = encoding.decode_float32(cell)
    expected = CONST_VALUES[[0, 3]] / 784.0
    eps = np.finfo(np.float32).eps * 8  # a few float32 roundings of one product
    for (lo, hi), value, one in zip(cell["ranges"], expected, maps):
        assert lo == hi == pytest.approx(value, rel=eps)  # a constant map: its range is one value
        assert (one == lo).all()
    assert cell["range"] == [cell["ranges"][0][0], cell["ranges"][1][1]]  # the whole stack's, for shared scales


def test_the_response_names_the_versions_it_was_computed_from(served):
    runs = {r["run"]: r for r in body_of(served.get("runs"))["runs"]}
    body, _ = attribute(served)
    assert body["samples_sha256"] == [s["sha256"] for s in runs["cnn"]["sample_sets"] if s["name"] == "val"][0]
    assert body["cells"][0]["version"] == runs["cnn"]["checkpoints"][0]["version"]


def test_a_result_of_another_method_version_is_not_served(served, monkeypatch):
    attribute(served)
    assert attribute(served)[1] == 0  # cached
    monkeypatch.setitem(registry.METHODS, "gradient", dataclasses.replace(registry.get("gradient"), version=99))
    assert attribute(served)[1] == 1  # computed again
    monkeypatch.undo()
    assert attribute(served)[1] == 0  # the first version's entry is still there


def test_results_of_other_library_versions_are_not_served(served, monkeypatch):
    attribute(served)
    predictions = {"models": [CNN], "samples": VAL, "indices": [0], "top_k": 1}
    served.post("predictions", predictions)
    upgraded = dict(versions.library_versions(), tensorflow="99.0.0")
    monkeypatch.setattr(versions, "library_versions", lambda: upgraded)
    assert attribute(served)[1] == 1
    before = served.plugin.pool.stats["submitted"]
    assert served.post("predictions", predictions).status_code == 200
    assert served.plugin.pool.stats["submitted"] == before + 1


def test_the_fixed_methods_carry_a_new_version():
    assert registry.get("deconvnet").version == registry.get("guided_backprop").version == 2
    assert registry.get("gradient").version == 1


def test_library_versions_are_read_without_importing_tensorflow():
    import subprocess
    import sys

    script = "import sys; from tb_xai_plugin.plugin import versions; v = versions.library_versions(); " \
             "print(v['tensorflow'] is not None, 'tensorflow' in sys.modules)"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["True", "False"], out.stderr
