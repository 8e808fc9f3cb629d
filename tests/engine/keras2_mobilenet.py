"""MobileNetV2 (alpha 0.35, 32x32, 3 classes, weights=None) logged as a Keras 2 user logs it: eager, summary.checkpoint.

    .venv-innvestigate/bin/python tests/engine/keras2_mobilenet.py DIRECTORY    -> stdout: [path, manifest]

Its own process because the engine tests run in graph mode, where saving the model's 262 weights takes a
session run each (~15 s); eager it is ~1 s. `run(directory)` calls it from the test process.
"""

import json
import os
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mobilenet_v2():
    """MobileNetV2 with He-normal depthwise kernels (Keras' Glorot shrinks the signal each block, to logits ~1e-12
    that LRP-epsilon's 1e-7 absorbs whole)."""
    import tensorflow as tf

    model = tf.keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(32, 32, 3), classes=3)
    rng = np.random.default_rng(6)
    for layer in model.layers:
        if type(layer).__name__ == "DepthwiseConv2D":
            layer.depthwise_kernel.assign(rng.normal(scale=np.sqrt(2 / 9), size=layer.depthwise_kernel.shape).astype(np.float32))
    return model


def run(directory):
    """(path, manifest) of the checkpoint this script logs in DIRECTORY, from any process of the Keras 2 stack."""
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), str(directory)], capture_output=True, text=True, cwd=REPO,
        timeout=300, check=False, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return tuple(json.loads(done.stdout))


def main():
    """Log mobilenet_v2() as step 1 of run DIRECTORY; print [path, manifest]."""
    sys.path[:0] = [REPO]
    from tb_xai_plugin import files, summary

    with summary.create_file_writer(sys.argv[1]).as_default():
        assert summary.checkpoint(mobilenet_v2(), step=1)
    ((path, manifest),) = files.checkpoint_listing(sys.argv[1])
    json.dump([path, manifest], sys.stdout)


if __name__ == "__main__":
    main()
