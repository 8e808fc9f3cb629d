"""The engine called directly, as a plain library user would: the reference the server's answers are checked against.

    python -m tests.reliability.engine_reference < jobs.json > answers.json

Runs in its own process because the iNNvestigate backend needs eager execution disabled and the test
process is eager (the native backend keeps it on). jobs.json: {"logdir", "jobs": [{"id", "op": "predict" | "attribute", "run", "step", "samples":
[run, name], "indices", and for attribute "method", "params", "target", "layer", "neuron", "seed"}]}.
Answers: {id: {"probs": [[...]]} or {"maps": [...], "targets": [...], "scores": [...]}}. Paths come
from the logdir's manifests (tb_xai_plugin.files), not from the plugin under test.
"""

import io
import json
import os
import sys

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load(logdir, run, step, cache):
    """The LoadedModel of run/step, loaded once."""
    from tb_xai_plugin import files, metadata
    from tb_xai_plugin.engine import backends as loading

    if (run, step) not in cache:
        run_dir = os.path.join(logdir, run)
        manifest = files.read_manifest(files.checkpoint_paths(run_dir, step, "h5")[1], metadata.KIND_CHECKPOINT)
        path = os.path.join(files.checkpoints_dir(run_dir), manifest["file"])
        cache[(run, step)] = loading.load_checkpoint(path, manifest)
    return cache[(run, step)]


def images(logdir, run, name):
    """(images, labels) of a sample set, read straight from its .npz."""
    from tb_xai_plugin import files

    with open(files.sample_paths(os.path.join(logdir, run), name)[0], "rb") as f:
        with np.load(io.BytesIO(f.read()), allow_pickle=False) as npz:
            return npz["images"], npz["labels"].astype(np.int64)


def answer(logdir, job, models):
    """One job's answer from the engine."""
    from tb_xai_plugin import engine

    model = load(logdir, job["run"], job["step"], models)
    x, labels = images(logdir, *job["samples"])
    x, labels = x[job["indices"]], labels[job["indices"]]
    if job["op"] == "predict":
        return {"probs": engine.predict(model, x, top_k=1, return_probs=True)["probs"].tolist()}
    out = engine.attribute(
        model, job["method"], x, params=job.get("params"), target=job.get("target"), labels=labels,
        layer=job.get("layer"), neuron=job.get("neuron"), seed=job.get("seed", 0),
    )  # fmt: skip
    return {"maps": out.maps.tolist(), "targets": out.targets.tolist(), "scores": out.scores.tolist()}


def main():
    """Read the jobs from stdin, write the answers to stdout."""
    from tb_xai_plugin import engine

    if engine.backends.innvestigate_available():  # as the plugin's workers do: graph mode for iNNvestigate only
        engine.enable_graph_mode()
    request = json.load(sys.stdin)
    models = {}
    answers = {job["id"]: answer(request["logdir"], job, models) for job in request["jobs"]}
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
