"""Run in a fresh process, as a worker (graph mode for iNNvestigate): how much attribution one checkpoint
puts on the demo's mark.

    python bias_probe.py LOGDIR RUN METHOD [METHOD ...]   -> one JSON object on stdout

On the marked images of other classes in the run's sample set ("probes"), it reports what the
model predicts and, per method (target: the predicted class), the share of |attribution| in the
mark's window and in the strongest window of the same size that does not overlap it.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import numpy as np  # noqa: E402

from demo import data, train  # noqa: E402
from tb_xai_plugin import engine, files, metadata  # noqa: E402
from tb_xai_plugin.engine.attribution import attribute  # noqa: E402
from tb_xai_plugin.engine.backends import load_checkpoint  # noqa: E402
from tb_xai_plugin.engine.predict import predict  # noqa: E402

MAX_PROBES = 32


def window_sums(maps, size):
    """[N, H-size+1, W-size+1]: the sum of each map over every size x size window."""
    padded = np.pad(maps, ((0, 0), (1, 0), (1, 0))).cumsum(1).cumsum(2)
    return padded[:, size:, size:] - padded[:, :-size, size:] - padded[:, size:, :-size] + padded[:, :-size, :-size]


def mark_and_rival(maps):
    """Per map: (share of |map| in the mark's window, share in the strongest window disjoint from it)."""
    mass = np.abs(maps)
    mass = mass / np.maximum(mass.sum(axis=(1, 2), keepdims=True), 1e-12)
    sums = window_sums(mass, data.MARK_SIZE)
    row, col = data.MARK_ORIGIN
    rows, cols = np.indices(sums.shape[1:])
    overlaps = (np.abs(rows - row) < data.MARK_SIZE) & (np.abs(cols - col) < data.MARK_SIZE)
    return sums[:, row, col], np.where(overlaps, -np.inf, sums).reshape(len(maps), -1).max(axis=1)


def load(logdir, run):
    """(LoadedModel of the run's last checkpoint, the probe images, their labels)."""
    run_dir = os.path.join(logdir, run)
    manifest = files.checkpoint_manifests(run_dir)[-1]
    path = os.path.join(run_dir, *metadata.PLUGIN_DIR, metadata.CHECKPOINTS_DIR, manifest["file"])
    model = load_checkpoint(path, manifest)
    (samples,) = [m for m in files.sample_manifests(run_dir) if m["name"] == train.SAMPLES_NAME]
    with np.load(os.path.join(run_dir, *metadata.PLUGIN_DIR, metadata.SAMPLES_DIR, samples["file"])) as stored:
        images, labels = stored["images"], stored["labels"]
    probes = np.flatnonzero(data.probe_marked(labels) & (labels != data.BIAS_CLASS))[:MAX_PROBES]
    return model, images[probes], labels[probes]


def main(logdir, run, *methods):
    """Print the probe report of `run` for `methods` as JSON."""
    if engine.backends.innvestigate_available():  # as the plugin's workers do: graph mode for iNNvestigate only
        engine.enable_graph_mode()
    model, images, labels = load(logdir, run)
    top = predict(model, images, top_k=1)
    report = {
        "probes": len(images),
        "called_bias_class": float(np.mean(top["top_classes"][:, 0] == data.BIAS_CLASS)),
        "mean_top_score": float(np.mean(top["top_scores"][:, 0])),
        "methods": {},
    }
    for method in methods:
        maps = attribute(model, method, images, target={"kind": "predicted"}).maps
        mark, rival = mark_and_rival(maps)
        mean_mark, mean_rival = mark_and_rival(np.abs(maps).mean(axis=0, keepdims=True))
        report["methods"][method] = {
            "mark_wins": float(np.mean(mark > rival)),
            "mean_map_mark": float(mean_mark[0]),
            "mean_map_rival": float(mean_rival[0]),
        }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
