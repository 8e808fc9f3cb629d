"""Pattern maps from the engine called directly: fit_patterns on a whole sample set, then attribute.

    python -m tests.plugin.pattern_reference < job.json > answer.json

job.json: {"logdir", "run", "step", "samples": [run, name], "method", "indices"}; answer: {"maps": [...]}.
Its own process: the iNNvestigate backend needs eager execution disabled and the test process is eager.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main():
    """Read the job from stdin, write the maps of its indices to stdout."""
    import importlib

    from tb_xai_plugin import engine
    from tests.reliability import engine_reference

    job = json.load(sys.stdin)
    if engine.backends.innvestigate_available():
        engine.enable_graph_mode()
    model = engine_reference.load(job["logdir"], job["run"], job["step"], {})
    pattern = importlib.import_module("tb_xai_plugin.engine.backends.%s.pattern" % model.backend)
    images, labels = engine_reference.images(job["logdir"], *job["samples"])
    pattern.fit_patterns(model, images)
    out = engine.attribute(model, job["method"], images[job["indices"]], labels=labels[job["indices"]])
    json.dump({"maps": out.maps.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
