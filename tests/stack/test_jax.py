"""Multi-backend Keras: a model trained under JAX, logged by the callback, explained through TensorFlow.

The training runs in a subprocess with KERAS_BACKEND=jax (the backend is chosen once per process);
this process runs Keras 3 on TensorFlow, as TensorBoard's workers do.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tb_xai_plugin import files, model_info

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def jax_run(tmp_path_factory):
    """(run dir, the checkpoint manifest, the JAX model's probabilities, the samples) of a run trained under JAX."""
    logdir = str(tmp_path_factory.mktemp("jax"))
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run([sys.executable, os.path.join(HERE, "jax_training.py"), logdir],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = os.path.join(logdir, "jax")
    first, manifest = files.checkpoint_manifests(run_dir)  # steps 1 and 2: training went on after a checkpoint
    assert first["weights_sha256"] != manifest["weights_sha256"]
    with np.load(files.sample_paths(run_dir, "validation")[0]) as data:
        samples = data["images"], data["labels"]
    return run_dir, manifest, np.load(os.path.join(logdir, "jax_probabilities.npy")), samples


def test_the_jax_checkpoint_is_a_keras_file_that_says_who_wrote_it(jax_run):
    run_dir, manifest, _, _ = jax_run
    assert keras.backend.backend() == "tensorflow"
    assert manifest["format"] == "keras" and manifest["file"] == "step-000000002.keras"
    assert manifest["versions"]["keras"] == keras.__version__ and manifest["versions"]["keras_backend"] == "jax"
    path = os.path.join(files.checkpoints_dir(run_dir), manifest["file"])
    assert files.sha256(path) == manifest["file_sha256"]


def test_tensorflow_loads_the_jax_model_with_its_weights_and_predictions(jax_run):
    run_dir, manifest, jax_probabilities, (images, _) = jax_run
    model = keras.models.load_model(os.path.join(files.checkpoints_dir(run_dir), manifest["file"]), compile=False, safe_mode=True)
    assert model_info.weights_checksum(model.get_weights()) == manifest["weights_sha256"]
    assert model_info.describe_layers(model) == manifest["layers"]
    probabilities = model.predict(images, verbose=0)
    # Same float32 weights, another backend's kernels: ~eps x the 27-term conv and 4-term dense sums.
    np.testing.assert_allclose(probabilities, jax_probabilities, rtol=0, atol=1e-5)


def test_the_engine_explains_the_jax_model_with_gradient(jax_run):
    import tensorflow as tf
    from tb_xai_plugin import engine

    run_dir, manifest, _, (images, labels) = jax_run
    model = engine.load_checkpoint(os.path.join(files.checkpoints_dir(run_dir), manifest["file"]), manifest)
    result = engine.attribute(model, "gradient", images, params={"postprocess": "none"}, target={"kind": "label"}, labels=labels)
    loaded = keras.models.load_model(os.path.join(files.checkpoints_dir(run_dir), manifest["file"]), compile=False)
    features = keras.Model(loaded.inputs, loaded.get_layer("dense").input)
    kernel, bias = loaded.get_layer("dense").get_weights()
    x = tf.constant(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = tf.matmul(features(x), kernel) + bias
        chosen = tf.reduce_sum(tf.gather(logits, labels, axis=1, batch_dims=1))
    reference = tape.gradient(chosen, x).numpy()
    assert np.abs(reference).max() > 0
    assert np.abs(result.raw - reference).max() <= 1e-4 * np.abs(reference).max()
