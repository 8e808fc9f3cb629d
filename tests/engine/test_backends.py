"""Which backend a checkpoint gets, and how a method a backend lacks is refused (picker and attribute alike)."""

import os
import subprocess
import sys

import pytest
from conftest import BACKEND

from tb_xai_plugin import engine
from tb_xai_plugin.engine import backends
from tb_xai_plugin.errors import XaiError

OTHER = {"native": "innvestigate", "innvestigate": "native"}


def test_the_manifest_picks_the_backend():
    keras2 = "innvestigate" if backends.innvestigate_available() else "native"
    assert engine.backend_name({"versions": {"keras": "3.15.1"}}) == "native"
    assert engine.backend_name({"versions": {"keras": "2.14.0"}}) == keras2
    assert engine.backend_name({"versions": {}}) == keras2  # old logdirs recorded no Keras version
    assert engine.backend_name({}) == keras2
    assert keras2 == BACKEND  # this stack's own checkpoints are Keras 2 exactly where iNNvestigate is installed


def test_backend_name_imports_no_tensorflow():
    code = (
        "import sys; from tb_xai_plugin import engine; "
        "print(engine.backend_name({'versions': {'keras': '3.1'}}), 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=dict(os.environ))
    assert out.stdout.split() == ["native", "False", "False"]


def test_a_method_the_backend_lacks_is_refused_with_the_reason(cnn, images, monkeypatch):
    monkeypatch.delitem(backends.IMPLEMENTATIONS[cnn.backend], "grad_cam")
    answer = engine.applicable_methods(cnn)["grad_cam"]
    assert not answer["ok"] and "the %s backend has no implementation of grad_cam" % cnn.backend in answer["reason"]
    with pytest.raises(XaiError, match="no implementation of grad_cam"):
        engine.attribute(cnn, "grad_cam", images[:1])
    assert engine.applicable_methods(cnn)["gradient"]["ok"]


def test_every_method_has_an_implementation_in_this_stack_s_backend(cnn):
    missing = [m["id"] for m in engine.describe_methods() if backends.implementation(cnn.backend, m["id"]) is None]
    assert missing == []
