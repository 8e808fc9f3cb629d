"""Which checkpoints of a run to keep: a retention policy, applied by the summary op, the callback and `tb-xai prune`.

A policy keeps the last `keep_last` checkpoints and those whose step is a multiple of `keep_every`,
and always the first one and the best one (the lowest, or highest, `metric` recorded in the
manifests; see `summary.checkpoint(metric=...)`). Steps, not positions, decide `keep_every`, so
applying a policy again, after more checkpoints were logged, never deletes what it kept before
for that reason. With neither `keep_last` nor `keep_every` a policy keeps everything (the default).

A checkpoint is deleted manifest first, then its data, then its precomputed results (see
plugin/result_store.py): the manifest is what makes a checkpoint exist (files.checkpoint_listing),
so a reader never finds a manifest whose file is gone.
"""

import dataclasses
import math
import os

from tensorboard.compat import tf

from tb_xai_plugin import files, metadata
from tb_xai_plugin.errors import XaiError
from tb_xai_plugin.plugin import result_store

METRIC_MODES = ("min", "max")
# The callback warns once when a run's checkpoints pass this many megabytes (XaiCallback(size_warning_mb=...)).
SIZE_WARNING_MB = 2048


def _count(value, what):
    """`value` if None or a positive int, else XaiError."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise XaiError("%s must be a positive integer or None, not %r" % (what, value))
    return value


@dataclasses.dataclass(frozen=True)
class Policy:
    """Keep the last `keep_last` checkpoints and every step that is a multiple of `keep_every` (None: no such
    rule), always the first and the best; with both None, everything."""

    keep_last: int = None
    keep_every: int = None

    def __post_init__(self):
        _count(self.keep_last, "keep_last")
        _count(self.keep_every, "keep_every")

    @property
    def keeps_everything(self):
        """True when the policy deletes nothing."""
        return self.keep_last is None and self.keep_every is None


def metric_record(value, name="metric", mode="min"):
    """The manifest's optional "metric": {"name", "value", "mode"}; XaiError for a value that is no finite number."""
    if mode not in METRIC_MODES:
        raise XaiError("metric mode must be 'min' or 'max', not %r" % (mode,))
    try:
        number = None if isinstance(value, (bool, str, bytes)) else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise XaiError("metric must be a number, not %r" % (value,))
    value = number
    if not math.isfinite(value):
        raise XaiError("metric must be a finite number, not %r" % value)
    return {"name": str(name), "value": value, "mode": mode}


def best_step(manifests):
    """The step with the best metric among the manifests recording the newest one's metric name (earliest on ties), or None."""
    recorded = [m for m in manifests if isinstance(m.get("metric"), dict)]
    if not recorded:
        return None
    newest = max(recorded, key=lambda m: m["step"])["metric"]
    same = [m for m in recorded if m["metric"].get("name") == newest["name"] and m["metric"].get("mode") == newest["mode"]]
    sign = 1.0 if newest["mode"] == "min" else -1.0
    return min(same, key=lambda m: (sign * float(m["metric"]["value"]), m["step"]))["step"]


def kept_steps(manifests, policy):
    """The steps `policy` keeps among checkpoint manifests: first, best, last keep_last, multiples of keep_every."""
    steps = sorted(m["step"] for m in manifests)
    if policy.keeps_everything or not steps:
        return set(steps)
    keep = {steps[0]}
    best = best_step(manifests)
    if best is not None:
        keep.add(best)
    if policy.keep_last is not None:
        keep.update(steps[-policy.keep_last :])
    if policy.keep_every is not None:
        keep.update(s for s in steps if s % policy.keep_every == 0)
    return keep


def delete_checkpoint(run_dir, manifest):
    """Delete one checkpoint: its manifest first (it stops existing for every reader), then its data file or folder,
    then the results precomputed for it."""
    data_path, manifest_path = files.checkpoint_paths(run_dir, manifest["step"], manifest["format"])
    try:
        tf.io.gfile.remove(manifest_path)
    except tf.errors.NotFoundError:
        pass
    except (OSError, tf.errors.OpError) as e:
        raise XaiError("cannot delete %s: %s" % (manifest_path, e)) from e
    files.remove_quietly(data_path)
    files.remove_quietly(result_store.results_dir(run_dir, manifest["step"]))


def apply(run_dir, policy, dry_run=False):
    """Delete the checkpoints of `run_dir` that `policy` does not keep (none if dry_run): the deleted steps, sorted."""
    manifests = files.checkpoint_manifests(run_dir)
    keep = kept_steps(manifests, policy)
    doomed = [m for m in manifests if m["step"] not in keep]
    if not dry_run:
        for manifest in doomed:
            delete_checkpoint(run_dir, manifest)
    return [m["step"] for m in doomed]


def checkpoint_bytes(run_dir):
    """Bytes of a run's checkpoint data files (SavedModel folders summed over their files)."""
    total = 0
    for data_path, _ in files.checkpoint_listing(run_dir):
        try:
            if tf.io.gfile.isdir(data_path):
                for root, _, names in tf.io.gfile.walk(data_path):
                    total += sum(tf.io.gfile.stat(os.path.join(root, n)).length for n in names)
            else:
                total += tf.io.gfile.stat(data_path).length
        except (OSError, tf.errors.OpError):
            continue  # deleted meanwhile
    return total


def run_dirs(logdir, folders=(metadata.CHECKPOINTS_DIR,)):
    """Every folder under `logdir` (itself included) whose plugins/xai holds one of `folders`, sorted; the
    walk never enters a plugins folder (result stores hold thousands of files, each a remote call to list)."""
    plugins = metadata.PLUGIN_DIR[0]
    found = []
    for root, dirs, _ in tf.io.gfile.walk(logdir):
        names = [d.rstrip("/") for d in dirs]
        dirs[:] = [d for d, name in zip(dirs, names) if name != plugins]
        if plugins in names:
            xai = os.path.join(root, *metadata.PLUGIN_DIR)
            if any(tf.io.gfile.isdir(os.path.join(xai, folder)) for folder in folders):
                found.append(root.rstrip("/"))
    return sorted(found)
