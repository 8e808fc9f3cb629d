"""One real `tensorboard --path_prefix /tb` over a tiny logdir on gs:// (tests/deploy/gcs.py), shared by the proxy and
remote-logdir tests, and the self-signed certificate the TLS proxies use."""

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from tests.conftest import free_port
from tests.deploy.gcs import GcsEmulator

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


def wait_for_xai(base, process, timeout=120):
    """Block until the TensorBoard at `base` lists the xai plugin as enabled, or fail with its exit."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("tensorboard exited with %s" % process.returncode)
        try:
            with urllib.request.urlopen(base + "/data/plugins_listing", timeout=5) as r:
                if json.load(r).get("xai", {}).get("enabled"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("the xai plugin did not become active within %ss" % timeout)


@contextlib.contextmanager
def tensorboard(logdir, cache, args=(), env=None, prefix=""):
    """(port, process) of a real `tensorboard` over `logdir` with extra `args` and environment; its log in `cache`."""
    port = free_port()
    command = [os.path.join(os.path.dirname(sys.executable), "tensorboard"), "--logdir", logdir, "--host", "127.0.0.1",
               "--port", str(port), "--reload_interval", "1", "--xai_cache_dir", cache, *args]  # fmt: skip
    log = open(os.path.join(cache, "tensorboard.log"), "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
    try:
        wait_for_xai("http://127.0.0.1:%d%s" % (port, prefix), process)
        yield port, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


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
