"""The worker process in this stack: each checkpoint on its manifest's backend, eager execution left on in Keras 3.

A real spawned worker (plugin/worker_main.main) answers predict, applicable and attribute tasks for a
checkpoint written by this stack and, in the Keras 3 stack, for a Keras 2 .h5 written by the other stack
(an old logdir). The native backend's tf.functions return numpy arrays only with eager execution on, so
a map from a native checkpoint is proof that the worker left it on.
"""

import hashlib
import io
import multiprocessing
import os

import numpy as np
import pytest
from conftest import small_cnn, write_checkpoint

import innvestigate_maps
from tb_xai_plugin.plugin import worker_main

SCALE = {"type": "scale", "scale": 1 / 255.0, "offset": 0.0}


def sample_set(directory, images):
    """{"path", "sha256"} of a sample set .npz holding `images` with labels 0."""
    buffer = io.BytesIO()
    np.savez(buffer, images=images, labels=np.zeros(len(images), np.int64))
    path = os.path.join(str(directory), "samples.npz")
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    return {"path": path, "sha256": hashlib.sha256(buffer.getvalue()).hexdigest()}


@pytest.fixture(scope="module")
def worker():
    """A call(message) -> ("result" | "error", payload) into one spawned worker process."""
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=worker_main.main, args=(theirs, {}), daemon=True)
    process.start()
    counter = iter(range(1, 10**6))

    def call(message):
        task_id = next(counter)
        ours.send(("task", task_id, message))
        while True:
            kind, answered, payload = ours.recv()
            if kind != "progress" and answered == task_id:
                return kind, payload

    yield call
    ours.close()
    process.join(timeout=30)
    if process.is_alive():
        process.kill()


def ask_everything(call, checkpoint, samples):
    """(probs [3, K], applicable {id: {ok, reason}}, gradient maps [3, H, W]) from the worker."""
    base = {"checkpoint": {"path": checkpoint[0], "manifest": checkpoint[1]}, "samples": samples, "indices": [0, 1, 2]}
    kind, predicted = call(dict(base, op="predict"))
    assert kind == "result", predicted
    kind, applicable = call(dict(base, op="applicable"))
    assert kind == "result", applicable
    attribute = dict(base, op="attribute", method="gradient", params={}, target={"kind": "class", "index": 1},
                     layer=None, neuron=None, seed=0)  # fmt: skip
    kind, maps = call(attribute)
    assert kind == "result", maps
    return predicted["probs"], applicable["methods"], maps["maps"]


def test_a_checkpoint_of_this_stack_is_explained_on_its_backend(worker, tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3)).astype(np.uint8)
    checkpoint = write_checkpoint(small_cnn(seed=4), tmp_path / "run", preprocessing=SCALE)
    probs, applicable, maps = ask_everything(worker, checkpoint, sample_set(tmp_path, images))
    assert probs.shape == (3, 4) and np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert maps.shape == (3, 16, 16) and np.abs(maps).max() > 0
    assert applicable["gradient"]["ok"] and applicable["grad_cam"]["ok"]
    assert set(applicable) >= {"occlusion", "lrp.epsilon", "deeplift"}


@pytest.mark.stack("keras3")  # a Keras 2 logdir opened by the Keras 3 stack
def test_a_keras2_checkpoint_is_explained_by_the_keras3_stack(worker, tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3)).astype(np.uint8)
    np.save(tmp_path / "chain.npy", images)
    spec = {"chain": {"build": "parity_models:chain_cnn", "kwargs": {"seed": 8}, "preprocessing": SCALE}}
    job = {"id": "g", "checkpoint": "chain", "method": "gradient", "params": {}, "target": {"kind": "class", "index": 1}, "images": "chain.npy"}
    checkpoints, expected = innvestigate_maps.run(tmp_path, spec, [job])
    assert checkpoints["chain"][1]["format"] == "h5"
    _, applicable, maps = ask_everything(worker, checkpoints["chain"], sample_set(tmp_path, images))
    want = np.abs(expected["g"]).sum(axis=-1)  # the default postprocess is abs; maps sum the channels
    assert np.abs(maps - want).max() <= 1e-4 * np.abs(want).max()
    assert applicable["guided_backprop"]["ok"]
