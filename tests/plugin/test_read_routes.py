"""The GET routes on a real logdir: listing, methods, layers, images, progress, the bundle; no worker starts."""

import hashlib
import io
import os

import numpy as np
import pytest
from PIL import Image

from tb_xai_plugin.plugin import xai_plugin
from tests.plugin.conftest import CLASSES, Served, body_of, cnn_images


def test_runs_lists_every_checkpoint_and_sample_set(served):
    body = body_of(served.get("runs"))
    runs = {r["run"]: r for r in body["runs"]}
    assert sorted(runs) == ["a", "b", "c", "cnn"]
    assert [c["step"] for c in runs["cnn"]["checkpoints"]] == [1, 2]
    ckpt = runs["cnn"]["checkpoints"][0]
    assert ckpt["input_shape"] == [28, 28, 1] and ckpt["num_classes"] == 3 and ckpt["model_name"] == "tiny_cnn"
    val = runs["cnn"]["sample_sets"][1]
    assert {k: v for k, v in val.items() if k != "sha256"} == {
        "name": "val", "count": 6, "image_shape": [28, 28, 1], "has_labels": True, "class_names": CLASSES}  # fmt: skip
    with open(os.path.join(served.logdir, "cnn", "plugins", "xai", "samples", "val.npz"), "rb") as f:
        assert val["sha256"] == hashlib.sha256(f.read()).hexdigest()  # the version of its image URLs
    assert len({c["version"] for c in runs["cnn"]["checkpoints"]}) == 2  # each checkpoint's content checksum
    assert [s["name"] for s in runs["cnn"]["sample_sets"]] == ["big", "val"]
    assert runs["b"]["sample_sets"] == []
    assert served.plugin.pool.stats["started"] == 0  # listing never starts a worker


def test_methods_come_from_the_registry(served):
    from tb_xai_plugin.engine import registry

    body = body_of(served.get("methods"))
    assert [m["id"] for m in body["methods"]] == [m["id"] for m in registry.describe_methods()]
    assert all({"id", "label", "params", "signed", "takes_layer"} <= set(m) for m in body["methods"])


def test_layers_from_the_manifest(served):
    body = body_of(served.get("layers", run="cnn", step="2"))
    assert [layer["name"] for layer in body["layers"]][1:] == ["conv", "pool", "dense"]
    assert body["default_layer"] == "conv"
    assert body["methods"]["grad_cam"]["ok"] is None and body["methods_from"] == "manifest"  # unknown: nothing loaded
    dense = body_of(served.get("layers", run="a", step="0"))
    assert dense["default_layer"] is None
    assert dense["methods"]["grad_cam"]["ok"] is False and "reason" in dense["methods"]["grad_cam"]


def test_layers_starts_no_worker(logdir, tmp_path):
    fresh = Served(logdir, str(tmp_path / "cache"))
    try:
        assert body_of(fresh.get("layers", run="cnn", step="1"))["methods_from"] == "manifest"
        assert fresh.plugin.pool._slots == []  # a GET loads nothing: no worker process, no thread
    finally:
        fresh.close()


def test_image_is_the_stored_sample_as_png(served):
    response = served.get("image", run="cnn", samples="val", index="4")
    assert response.status_code == 200 and response.mimetype == "image/png"
    png = np.asarray(Image.open(io.BytesIO(response.get_data())))
    images, _ = cnn_images()
    np.testing.assert_array_equal(png, images[4, :, :, 0])


def test_float_images_are_scaled_by_their_value_range(served):
    response = served.get("image", run="a", samples="const", index="3")
    png = np.asarray(Image.open(io.BytesIO(response.get_data())))
    assert png.shape == (28, 28) and (png == 255).all()  # value 4 is the set's maximum


def test_progress_of_an_unknown_request(served):
    assert body_of(served.get("progress", request_id="nope")) == {
        "request_id": "nope", "state": "unknown", "done": 0, "total": 0}  # fmt: skip


def test_only_a_versioned_image_url_is_cached_for_long(served):
    (val,) = [s for r in body_of(served.get("runs"))["runs"] for s in r["sample_sets"] if (r["run"], s["name"]) == ("cnn", "val")]
    versioned = served.get("image", run="cnn", samples="val", index="4", v=val["sha256"])
    assert versioned.status_code == 200
    assert "max-age=%d" % xai_plugin.VERSIONED_CACHE_S in versioned.headers["Cache-Control"]
    for query in ({}, {"v": "0" * 64}):  # no version, or another content's: revalidated on every use
        response = served.get("image", run="cnn", samples="val", index="4", **query)
        assert response.status_code == 200 and "max-age" not in response.headers["Cache-Control"]
        assert "no-cache" in response.headers["Cache-Control"]
    assert served.get("image", run="cnn", samples="val", index="4", v="../x").status_code == 400


def test_index_js_is_the_built_dashboard(served):
    response = served.get("index.js")
    assert response.status_code == 200 and "javascript" in response.mimetype
    with open(os.path.join(xai_plugin.STATIC_DIR, "index.js"), "rb") as f:  # `make frontend` builds it
        assert response.get_data() == f.read()
    assert response.get_data() != xai_plugin.PLACEHOLDER_JS.encode()
    assert b"xai-grid" in response.get_data()  # the dashboard's own code, not the placeholder module


@pytest.mark.parametrize(
    "route, query, status",
    [
        ("layers", {"run": "cnn", "step": "7"}, 404),
        ("layers", {"run": "nope", "step": "1"}, 404),
        ("layers", {"run": "cnn", "step": "-1"}, 400),
        ("layers", {"run": "cnn", "step": "1e3"}, 400),
        ("layers", {"run": "cnn", "step": "99999999999999999999999"}, 400),
        ("layers", {"run": "cnn"}, 400),
        ("layers", {"run": "../cnn", "step": "1"}, 400),
        ("layers", {"run": "/etc", "step": "1"}, 400),
        ("layers", {"run": "cnn/..", "step": "1"}, 400),
        ("layers", {"run": "cnn\x00", "step": "1"}, 400),
        ("layers", {"run": "cnn\u2215..", "step": "1"}, 404),
        ("image", {"run": "cnn", "samples": "val", "index": "6"}, 404),
        ("image", {"run": "cnn", "samples": "val", "index": "-2"}, 400),
        ("image", {"run": "cnn", "samples": "../val", "index": "0"}, 400),
        ("image", {"run": "cnn", "samples": "train", "index": "0"}, 404),
        ("image", {"run": "b", "samples": "const", "index": "0"}, 404),
        ("progress", {"request_id": "a/b"}, 400),
        ("progress", {}, 400),
        ("static/..%2f..%2fsetup.py", {}, 404),
    ],
)
def test_bad_queries_get_a_clear_4xx(served, route, query, status):
    response = served.get(route, **query)
    assert response.status_code == status, response.get_data(as_text=True)
    assert body_of(response)["error"]


def test_encoded_dot_dot_in_the_query_is_refused(served):
    response = served.client.get("/data/plugin/xai/layers?run=%2e%2e%2fcnn&step=1")
    assert response.status_code == 400 and "run" in body_of(response)["error"]


def test_post_routes_refuse_get(served):
    response = served.get("attributions")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


def transfer_model():
    """28x28x1 -> a nested base network 'base' (two convs) -> global average pool -> dense(3, softmax)."""
    import tensorflow as tf

    layers = tf.keras.layers
    base = tf.keras.Sequential(
        [tf.keras.Input((28, 28, 1)), layers.Conv2D(2, 3, activation="relu", name="conv_a"),
         layers.Conv2D(3, 3, strides=2, activation="relu", name="conv_b")],
        name="base",
    )
    inputs = tf.keras.Input((28, 28, 1))
    outputs = layers.Dense(3, activation="softmax", name="dense")(layers.GlobalAveragePooling2D(name="pool")(base(inputs)))
    return tf.keras.Model(inputs, outputs, name="transfer")


def test_the_default_layer_of_a_nested_base_network_is_its_last_conv(tmp_path_factory):
    from tests.plugin.conftest import Served, write_run

    root = str(tmp_path_factory.mktemp("transfer"))
    write_run(root, "transfer", {1: transfer_model()})
    server = Served(root, str(tmp_path_factory.mktemp("transfer_cache")))
    try:
        body = body_of(server.get("layers", run="transfer", step="1"))
    finally:
        server.close()
    assert [layer["name"] for layer in body["layers"]][1:] == ["base", "base/conv_a", "base/conv_b", "pool", "dense"]
    assert body["default_layer"] == "base/conv_b"  # the last convolution, inside the nested base
    assert body["methods"]["grad_cam"]["ok"] is not False  # not refused: a layer with an [H, W, C] output exists
