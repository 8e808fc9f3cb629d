"""A logdir written by the Keras 2 stack opens and computes in the Keras 3 stack.

tests/fixtures/keras2_logdir was written by tests/fixtures/make_keras2_logdir.py in
.venv-innvestigate (TensorFlow 2.14, Keras 2.14): run `cnn`, checkpoints at steps 1 and 2 as .h5
(conv, batch norm, dense softmax), sample set `validation`. Here, in .venv, Keras 3 reads them.
"""

import hashlib
import os

import keras
import numpy as np
import pytest
from tensorboard import context
from tensorboard.backend.event_processing import data_ingester, data_provider, plugin_event_multiplexer

from tb_xai_plugin import files, model_info
from tb_xai_plugin.plugin.catalog import Catalog

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOGDIR = os.path.join(REPO, "tests", "fixtures", "keras2_logdir")


@pytest.fixture(scope="module")
def catalog():
    """The plugin's Catalog over the fixture logdir, through TensorBoard's own event reader."""
    multiplexer = plugin_event_multiplexer.EventMultiplexer(size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE)
    multiplexer.AddRunsFromDirectory(LOGDIR)
    multiplexer.Reload()
    return Catalog(LOGDIR, data_provider.MultiplexerDataProvider(multiplexer, LOGDIR))


def test_the_fixture_is_a_keras2_logdir():
    manifests = files.checkpoint_manifests(os.path.join(LOGDIR, "cnn"))
    assert [m["step"] for m in manifests] == [1, 2]
    assert {(m["format"], m["versions"]["keras"][:2]) for m in manifests} == {("h5", "2.")}
    assert keras.__version__.startswith("3.")  # and this test runs on Keras 3


def test_the_catalog_lists_the_old_run(catalog):
    ctx = context.RequestContext()
    (listing,) = catalog.runs(ctx, "")
    assert listing.run == "cnn" and sorted(listing.checkpoints) == [1, 2] and list(listing.sample_sets) == ["validation"]
    images, labels = catalog.images(listing.sample_sets["validation"])
    assert images.shape == (6, 12, 12, 1) and images.dtype == np.uint8 and labels.shape == (6,)


@pytest.mark.parametrize("step", [1, 2])
def test_keras3_loads_the_h5_with_the_same_weights_checksum(catalog, step):
    ref = catalog.checkpoint(context.RequestContext(), "", "cnn", step)
    with open(ref.path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == ref.manifest["file_sha256"]
    model = keras.models.load_model(ref.path, compile=False, safe_mode=True)  # Keras 3's legacy h5 loader
    assert model_info.weights_checksum(model.get_weights()) == ref.manifest["weights_sha256"]
    assert model_info.describe_layers(model) == ref.manifest["layers"]
    assert model_info.output_activation(model) == ref.manifest["output_activation"] == "softmax"
    # Batch norm's moving statistics were trained (non-trainable weights, the order-sensitive case).
    assert not np.allclose(model.get_layer("bn").moving_mean.numpy(), 0)


def test_the_engine_explains_the_old_checkpoint_with_gradient(catalog):
    from tb_xai_plugin import engine

    ctx = context.RequestContext()
    ref = catalog.checkpoint(ctx, "", "cnn", 2)
    images, labels = catalog.images(catalog.sample_set(ctx, "", "cnn", "validation"))
    assert engine.backend_name(ref.manifest) == "native"  # no iNNvestigate in this stack
    model = engine.load_checkpoint(ref.path, ref.manifest)
    result = engine.attribute(model, "gradient", images, params={"postprocess": "none"}, target={"kind": "label"}, labels=labels)
    assert result.raw.shape == (6, 12, 12, 1) and np.array_equal(result.targets, labels)
    reference = _logit_gradient(ref.path, images.astype(np.float32) / 255, labels)
    assert np.abs(reference).max() > 0
    # float32: both sides run the same few hundred multiply-adds per pixel, so they agree to ~1e-6 relative.
    assert np.abs(result.raw - reference).max() <= 1e-4 * np.abs(reference).max()


def _logit_gradient(path, x, labels):
    """d logit_label / d x by GradientTape on the h5 model: Dense's kernel applied by hand to the flattened features."""
    import tensorflow as tf

    model = keras.models.load_model(path, compile=False)
    features = keras.Model(model.inputs, model.get_layer("flatten").output)
    kernel, bias = model.get_layer("dense").get_weights()
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = tf.matmul(features(x, training=False), kernel) + bias
        chosen = tf.reduce_sum(tf.gather(logits, labels, axis=1, batch_dims=1))
    return tape.gradient(chosen, x).numpy()
