"""One real `tensorboard --path_prefix /tb` over a tiny logdir on gs:// (tests/deploy/gcs.py), shared by the proxy and
remote-logdir tests, and the self-signed certificate the TLS proxies use."""

import json
import os
import subprocess

import numpy as np
import pytest

from tests.deploy.gcs import GcsEmulator
from tests.processes import tensorboard

CLASSES = ["dark", "light"]
CKPT = "plugins/xai/checkpoints/step-000000001"
PREFIX = "/tb"
SCALE = {"type": "scale", "scale": 1.0 / 255.0, "offset": 0.0}


def tiny_model():
    """16x16x1 -> conv(2) -> global average pool -> dense(2, softmax), seeded."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(3)
    inputs = tf.keras.Input((16, 16, 1))
    x = tf.keras.layers.Conv2D(2, 3, activation="relu", name="conv")(inputs)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = tf.keras.layers.Dense(2, activation="softmax", name="dense")(x)
    return tf.keras.Model(inputs, outputs, name="tiny")


def samples(count=4):
    """`count` random 16x16x1 uint8 images and their labels."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, 16, 16, 1), dtype=np.uint8), np.arange(count) % 2


def write_run(logdir, run="cnn"):
    """One checkpoint (step 1) and a sample set 'val' in <logdir>/<run>: the model logged."""
    from tb_xai_plugin import summary

    model = tiny_model()
    images, labels = samples()
    writer = summary.create_file_writer(os.path.join(logdir, run))
    with writer.as_default():
        assert summary.samples("val", images, step=0, labels=labels, class_names=CLASSES)
        assert summary.checkpoint(model, step=1, class_names=CLASSES, preprocessing=SCALE)
    writer.flush()
    writer.close()
    return model


@pytest.fixture(scope="package")
def certificate(tmp_path_factory):
    """(cert.pem, key.pem): a self-signed certificate for 127.0.0.1 and www.googleapis.com (openssl CLI)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:www.googleapis.com,DNS:storage.googleapis.com"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="package")
def served(tmp_path_factory, certificate):
    """(TensorBoard's port, its checkpoint cache folder, the local copy of the logdir) over gs://logs/exp.

    Runs: "cnn" (a checkpoint and the sample set "val"), "broken" (its checkpoint manifest is not JSON),
    "tampered" (its checkpoint's bytes no longer match the manifest's file_sha256)."""
    local = str(tmp_path_factory.mktemp("logdir"))
    for run in ("cnn", "broken", "tampered"):
        write_run(local, run)
    with open(os.path.join(local, "broken", CKPT + ".json"), "w") as f:
        f.write("{not json")
    with open(os.path.join(local, "tampered", CKPT + ".json")) as f:
        data_file = json.load(f)["file"]  # .keras from Keras 3, .h5 from Keras 2
    with open(os.path.join(local, "tampered", "plugins", "xai", "checkpoints", data_file), "ab") as f:
        f.write(b"\0")
    cache = str(tmp_path_factory.mktemp("cache"))
    gcs = GcsEmulator(certificate, log_path=os.path.join(cache, "gcs.log"))
    try:
        url = gcs.put_tree(local, "exp")
        args = ["--load_fast", "false", "--path_prefix", PREFIX]
        with tensorboard(url, cache, args, env=gcs.environment(), prefix=PREFIX) as (port, _):
            yield port, os.path.join(cache, "checkpoints"), local
    finally:
        gcs.close()
