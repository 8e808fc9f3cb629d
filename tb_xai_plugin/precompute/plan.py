"""The work of a precompute job, listed from the logdir's manifests: one item per request the plugin would get.

An item is a JSON-able dict: {"kind": "suggestions" | "attributions", "run", "step", "body"}, where
"body" is the POST body a client would send for it (docs/http_api.md), parsed by plugin.parsing
like any request. A "suggestions" item computes a checkpoint's predictions on a whole sample set
(what predictions and suggestions read, plus a layer's activations with --layer); an
"attributions" item one method's maps on up to parsing.MAX_ATTRIBUTION_INDICES samples.
"""

import os

from tb_xai_plugin import files, metadata, retention
from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.plugin import parsing


def run_names(logdir):
    """The runs of `logdir` (TensorBoard's names: relative paths with '/', '.' for the logdir itself) with xai files."""
    logdir = logdir.rstrip("/")
    names = []
    for found in retention.run_dirs(logdir, (metadata.CHECKPOINTS_DIR, metadata.SAMPLES_DIR)):
        relative = found[len(logdir) :].strip("/").replace(os.sep, "/")
        names.append(relative or ".")
    return sorted(names)


def run_dir(logdir, run):
    """<logdir>/<run> ('.': the logdir)."""
    return logdir if run == "." else "/".join((logdir.rstrip("/"), run)) if "://" in logdir else os.path.join(logdir, run)


def _chosen(names, wanted, what):
    """`wanted` (all of `names` when None), XaiError naming any that is not among `names`."""
    if wanted is None:
        return list(names)
    missing = [w for w in wanted if w not in names]
    if missing:
        raise XaiError("no %s %s in the logdir (there are: %s)" % (what, ", ".join(map(str, missing)), ", ".join(map(str, names)) or "none"))
    return list(wanted)


def sample_set_of(logdir, run, samples, samples_run):
    """(run, manifest) of the sample set named `samples` in `samples_run` (default: `run`); XaiError if none."""
    where = samples_run or run
    found = {m["name"]: m for m in files.sample_manifests(run_dir(logdir, where))}
    if samples not in found:
        raise XaiError("run %r has no sample set named %r (it has: %s)" % (where, samples, ", ".join(sorted(found)) or "none"))
    return where, found[samples]


def plan(logdir, runs=None, methods=(), steps=None, samples="validation", samples_run=None, target=None, layer=None,
         neuron=None, seed=0, params=None):  # fmt: skip
    """The items of a job: per run x checkpoint (steps: None = all), a suggestions item and per method the
    attributions items covering every sample of the sample set `samples`."""
    all_runs = run_names(logdir)
    items = []
    for run in _chosen(all_runs, runs, "run"):
        manifests = files.checkpoint_manifests(run_dir(logdir, run))
        if runs is None and not manifests:
            continue
        chosen = _chosen([m["step"] for m in manifests], steps, "step of run %r:" % run) if steps is not None else [m["step"] for m in manifests]
        if not chosen:
            continue
        set_run, set_manifest = sample_set_of(logdir, run, samples, samples_run)
        samples_body = {"run": set_run, "name": set_manifest["name"]}
        for step in chosen:
            model = [{"run": run, "step": step}]
            body = {"models": model, "samples": samples_body, "layer": layer, "neuron": neuron}
            items.append({"kind": "suggestions", "run": run, "step": step, "body": _checked(body, parsing.parse_suggestions)})
            count = int(set_manifest["count"])
            for method in methods:
                for start in range(0, count, parsing.MAX_ATTRIBUTION_INDICES):
                    body = {
                        "models": model, "samples": samples_body,
                        "indices": list(range(start, min(count, start + parsing.MAX_ATTRIBUTION_INDICES))),
                        "methods": [{"id": method, "params": (params or {}).get(method, {})}],
                        "target": target, "layer": layer, "neuron": neuron, "seed": seed,
                    }  # fmt: skip
                    items.append({"kind": "attributions", "run": run, "step": step, "body": _checked(body, parsing.parse_attributions)})
    return items


def _checked(body, parse):
    """`body` after checking that `parse` takes it (XaiError before any work starts otherwise)."""
    parse(body)
    return body
