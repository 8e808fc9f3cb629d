"""Maps from the iNNvestigate backend on Keras 2 checkpoints it writes: the reference for native parity tests.

    .venv-innvestigate/bin/python tests/engine/innvestigate_maps.py < job.json > checkpoints.json

Runs in the Keras 2 stack, in graph mode (tests/engine/conftest.py), as its own process. job.json:
{"directory", "checkpoints": {name: {"build": "module:function" importable from tests/engine, "kwargs",
"preprocessing"}}, "jobs": [{"id", "checkpoint", "method", "params", "target", "images": .npy name,
"fit": .npy name or null, "layer"?}]}. Each checkpoint is built and written under directory/<name>; each job's
raw maps [N, H, W, C] (or maps [N, H, W] for methods without channels) go to directory/maps.npz under its id (patterns fitted on "fit" first, by the
backend's pattern.fit_patterns; each fitted pattern [D, K] goes there too, as "<id>:<estimator>:<layer>").
stdout: {name: [path, manifest]} of the checkpoints.
`run(directory, checkpoints, jobs)` does all that from the test process (any stack).
"""

import importlib
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYTHON = os.path.join(REPO, ".venv-innvestigate", "bin", "python")


def run(directory, checkpoints, jobs):
    """({name: (path, manifest)}, {job id: maps}) from this script run by the iNNvestigate stack's python."""
    job = {"directory": str(directory), "checkpoints": checkpoints, "jobs": jobs}
    done = subprocess.run(
        [PYTHON, os.path.abspath(__file__)], input=json.dumps(job), capture_output=True, text=True, cwd=REPO,
        timeout=600, check=False, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with np.load(os.path.join(str(directory), "maps.npz")) as npz:
        maps = {name: npz[name] for name in npz.files}
    return {name: tuple(pair) for name, pair in json.loads(done.stdout).items()}, maps


def build(spec):
    """The Keras 2 model of a checkpoint spec: module:function called with its kwargs."""
    module, function = spec["build"].split(":")
    return getattr(importlib.import_module(module), function)(**spec.get("kwargs", {}))


def main():
    """Write the checkpoints, compute every job's maps, print the checkpoints' paths and manifests."""
    sys.path[:0] = [HERE, REPO]
    from conftest import write_checkpoint  # enables graph mode

    from tb_xai_plugin import engine

    job = json.load(sys.stdin)
    directory = job["directory"]
    written, models, maps = {}, {}, {}
    for name, spec in job["checkpoints"].items():
        written[name] = write_checkpoint(build(spec), os.path.join(directory, name), preprocessing=spec.get("preprocessing"))
        models[name] = engine.load_checkpoint(*written[name])
        assert models[name].backend == "innvestigate", models[name].backend
    for one in job["jobs"]:
        model = models[one["checkpoint"]]
        if one.get("fit"):
            pattern = importlib.import_module("tb_xai_plugin.engine.backends.%s.pattern" % model.backend)
            fitted = pattern.fit_patterns(model, np.load(os.path.join(directory, one["fit"])))
            for estimator in ("linear", "relu"):
                maps.update({"%s:%s:%s" % (one["id"], estimator, name): a for name, a in getattr(fitted, estimator).items()})
        images = np.load(os.path.join(directory, one["images"]))
        out = engine.attribute(model, one["method"], images, params=one.get("params"), target=one.get("target"), layer=one.get("layer"))
        maps[one["id"]] = out.raw if out.raw is not None else out.maps  # CAM and perturbation maps have no channels
    np.savez(os.path.join(directory, "maps.npz"), **maps)
    json.dump(written, sys.stdout)


if __name__ == "__main__":
    main()
