"""The sanity check's finding on a demo model (Adebayo et al., 2018): guided backprop's maps survive the
randomization of the top layers, the gradient's do not, and only guided backprop gets the badge.

The demo's plain CNN (demo/models.py) is trained here on 1,000 Fashion-MNIST images for 2 epochs, as
`make demo` trains it but smaller, logged with the summary ops and loaded by the engine.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from demo import data, models
from tb_xai_plugin import files, summary
from tb_xai_plugin.engine import backends, sanity
from tests.plugin.conftest import checkpoint_file

TRAIN, EPOCHS, SAMPLES = 1000, 2, 8
SCALE = {"type": "scale", "scale": 1.0 / 255.0, "offset": 0.0}


@pytest.fixture(scope="module")
def demo_cnn(tmp_path_factory):
    """(the demo's plain CNN trained briefly and loaded from its checkpoint, 8 test images)."""
    (x_train, y_train), (x_test, _) = data.load_fashion_mnist(download=False)
    tf.keras.utils.set_random_seed(0)
    keras_model = models.plain_cnn(data.IMAGE_SHAPE, len(data.CLASS_NAMES))
    keras_model.compile("adam", "sparse_categorical_crossentropy")
    keras_model.fit(x_train[:TRAIN, ..., None] / np.float32(255), y_train[:TRAIN], epochs=EPOCHS, batch_size=64, verbose=0)
    run = os.path.join(str(tmp_path_factory.mktemp("demo")), "cnn")
    with summary.create_file_writer(run).as_default():
        assert summary.checkpoint(keras_model, step=1, class_names=list(data.CLASS_NAMES), preprocessing=SCALE)
    manifest = files.checkpoint_manifests(run)[0]
    return backends.load_checkpoint(checkpoint_file(run, 1), manifest), x_test[:SAMPLES, ..., None]


def test_guided_backprop_gets_the_badge_and_the_gradient_does_not(demo_cnn):
    model, images = demo_cnn
    result = sanity.cascading_randomization(model, [("gradient", {}), ("guided_backprop", {})], images, max_stages=2)
    assert result["stages"] == ["conv2b", "conv1a"] and result["randomized"] == [3, 6]  # the top half, then all
    gradient, guided = (agreement_after_the_top(entry) for entry in result["methods"])
    assert not sanity.badge(gradient), "the gradient's maps should change once the top is random (%.2f)" % gradient
    assert sanity.badge(guided), "guided backprop's maps should barely change (%.2f)" % guided
    assert guided - gradient > 0.25, (guided, gradient)


def agreement_after_the_top(entry):
    """The mean over samples of rho at the first stage (the top half of the weighted layers randomized)."""
    return float(np.nanmean(entry["correlations"][0]))
