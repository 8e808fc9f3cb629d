"""The layer picker in Chromium against a real TensorBoard: on a Rescaling-first model, once the tab has had a
worker check the checkpoint, the folded layers are greyed out (disabled, the refusal as their title) and the
default layer is the convolution."""

import json
import os
import urllib.parse

import numpy as np

from tests.browser.conftest import serve_tensorboard
from tests.browser.test_xai_tab import wait_for_frame

CLASSES = ["a", "b", "c"]
CHECKED_MS = 60_000  # the tab's POST applicability: a worker loads the tiny model (seconds)
FOLDED_TITLE = "layer 'rescaling' is input preprocessing, folded into the recorded preprocessing"
OPTIONS = "[...document.querySelectorAll('#xai-layer option')].map(o => ({value: o.value, disabled: o.disabled, title: o.title}))"


def build_logdir(root):
    """Run 'rescaled': 28x28x1 -> Rescaling(1/255) -> conv -> pool -> dense(3) at step 1, and 2 samples 'val'."""
    import tensorflow as tf

    from tb_xai_plugin import summary

    tf.keras.utils.set_random_seed(4)
    inputs = tf.keras.Input((28, 28, 1), name="pixels")
    x = tf.keras.layers.Rescaling(1.0 / 255.0, name="rescaling")(inputs)
    x = tf.keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3, activation="softmax", name="dense")(x))
    images = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
    writer = summary.create_file_writer(os.path.join(root, "rescaled"))
    with writer.as_default():
        assert summary.samples("val", images, step=0, labels=np.array([0, 1]), class_names=CLASSES)
        assert summary.checkpoint(model, step=1, class_names=CLASSES)
    writer.flush()
    writer.close()
    return root


def test_the_picker_greys_out_the_folded_layers(tmp_path_factory, bundle, browser_context):
    logdir = build_logdir(str(tmp_path_factory.mktemp("folded-logdir")))
    with serve_tensorboard(logdir, str(tmp_path_factory.mktemp("folded-cache"))) as url:
        state = {"s": ["rescaled", "val"], "m": [["rescaled", 1]], "a": [["grad_cam", {}]], "r": [0]}
        page = browser_context.new_page()
        page.goto(url + "/#xai&xai=" + urllib.parse.quote(json.dumps(state)))
        frame = wait_for_frame(page)
        frame.wait_for_selector("#xai-layer option[value=rescaling][disabled]", state="attached", timeout=CHECKED_MS)
        options = {o["value"]: o for o in frame.evaluate(OPTIONS)}
        assert options["rescaling"]["disabled"] and FOLDED_TITLE in options["rescaling"]["title"], options
        assert options["pixels"]["disabled"] and not options["conv"]["disabled"] and options["conv"]["title"] == ""
        assert frame.evaluate("document.querySelector('#xai-layer').value") == "conv"
        page.close()
