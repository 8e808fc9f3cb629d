"""What the logdir holds: runs (from the data provider), checkpoints and sample sets (from manifests).

The client names a run, a step and a sample-set name; only this module turns them into paths,
always inside `<logdir>/<run>/plugins/xai/`, and only for runs the data provider lists and
manifests that exist. Files are read with tf.io.gfile so remote logdirs work. Listings are
cached for `ttl_s` seconds and manifests by modification time, so polling stays cheap while
training keeps adding checkpoints. Which manifests count, and how a sample set is read (its checksum
checked), is `tb_xai_plugin.files`' rule, the same for the library and the CLI; a manifest that is
unreadable or inconsistent is skipped.
"""

import dataclasses
import logging
import threading
import time

from tb_xai_plugin import files, metadata
from tb_xai_plugin.errors import NotFoundError, XaiError

logger = logging.getLogger(__name__)

MTIME_RESOLUTION_S = 2.0  # manifests modified more recently than this are re-read (gfile.stat: whole seconds)


def _gfile():
    """tf.io.gfile, through TensorBoard's lazy TensorFlow import."""
    from tensorboard.compat import tf

    return tf.io.gfile


def join(*parts):
    """Join path parts with '/' for URLs (gs://...) and the OS separator otherwise."""
    if "://" in parts[0]:
        return "/".join(p.rstrip("/") for p in parts)
    import os

    return os.path.join(*parts)


@dataclasses.dataclass(frozen=True)
class CheckpointRef:
    """One checkpoint: its run, step, data path and manifest."""

    run: str
    step: int
    path: str
    manifest: dict


@dataclasses.dataclass(frozen=True)
class SampleSetRef:
    """One sample set: its run, name, data path and manifest."""

    run: str
    name: str
    path: str
    manifest: dict


@dataclasses.dataclass(frozen=True)
class RunListing:
    """A run's checkpoints {step: CheckpointRef} and sample sets {name: SampleSetRef}, and why some could not be listed."""

    run: str
    checkpoints: dict
    sample_sets: dict
    problems: tuple = ()  # messages: a folder that cannot be listed, a manifest that cannot be read or is invalid


class Catalog:
    """Maps (run, step) and (run, sample-set name) to files in the logdir; see the module docstring."""

    def __init__(self, logdir, data_provider, ttl_s=2.0):
        self.logdir = logdir
        self.data_provider = data_provider
        self.ttl_s = ttl_s
        self._listings = {}  # run -> (time, RunListing)
        self._manifests = {}  # path -> (mtime, manifest or None)
        self._lock = threading.Lock()

    def run_names(self, ctx, experiment_id):
        """Names of the runs TensorBoard's data provider knows, sorted."""
        runs = self.data_provider.list_runs(ctx, experiment_id=experiment_id)
        return sorted(r.run_name for r in runs)

    def runs(self, ctx, experiment_id):
        """RunListing of every run that has checkpoints or sample sets, by run name."""
        listings = [self._listing(run) for run in self.run_names(ctx, experiment_id)]
        return [x for x in listings if x.checkpoints or x.sample_sets]

    def runs_and_problems(self, ctx, experiment_id):
        """(RunListings with data, [{"run", "message"}] for every listing or manifest that failed), for the runs route."""
        try:
            names = self.run_names(ctx, experiment_id)
        except Exception as e:  # noqa: BLE001  (the data provider's own I/O on a remote logdir)
            return [], [{"run": None, "message": "the runs of %s cannot be listed: %s" % (self.logdir, e)}]
        listings = [self._listing(run) for run in names]
        problems = [{"run": x.run, "message": text} for x in listings for text in x.problems]
        return [x for x in listings if x.checkpoints or x.sample_sets], problems

    def run(self, ctx, experiment_id, run):
        """The RunListing of `run`; NotFoundError if the data provider does not list it."""
        if run not in self.run_names(ctx, experiment_id):
            raise NotFoundError("no run named %r" % (run,))
        return self._listing(run)

    def checkpoint(self, ctx, experiment_id, run, step):
        """The CheckpointRef of `run` at `step`; NotFoundError if there is no such manifest."""
        found = self.run(ctx, experiment_id, run).checkpoints.get(step)
        if found is None:
            raise NotFoundError("run %r has no checkpoint at step %d" % (run, step))
        return found

    def sample_set(self, ctx, experiment_id, run, name):
        """The SampleSetRef named `name` in `run`; NotFoundError if there is none or its data file is gone."""
        found = self.run(ctx, experiment_id, run).sample_sets.get(name)
        if found is None:
            raise NotFoundError("run %r has no sample set named %r" % (run, name))
        if not _gfile().exists(found.path):  # deleted since the listing: never served from a memory copy
            raise NotFoundError("sample set %r of run %r is missing: its data file was deleted" % (name, run))
        return found

    def reader(self, ref):
        """The SampleSetReader of a sample set (files.open_sample_set: rows on demand, checksum checked once per file version)."""
        return files.open_sample_set(ref.path, ref.manifest["sha256"])

    def images(self, ref):
        """(images, labels) of a whole sample set, for small sets (the routes read rows through `reader`)."""
        reader = self.reader(ref)
        return reader.range(0, reader.count), reader.labels

    def _run_dir(self, run):
        """<logdir>/<run> (run '.' is the logdir itself)."""
        return self.logdir if run == "." else join(self.logdir, run)

    def _listing(self, run):
        """The run's RunListing, rebuilt when older than ttl_s."""
        now = time.monotonic()
        with self._lock:
            cached = self._listings.get(run)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        run_dir = self._run_dir(run)
        problems = []
        read = lambda path, kind: self._manifest(path, kind, problems)  # noqa: E731
        checkpoints = {m["step"]: CheckpointRef(run, m["step"], path, m) for path, m in files.checkpoint_listing(run_dir, read)}
        sample_sets = {m["name"]: SampleSetRef(run, m["name"], path, m) for path, m in files.sample_listing(run_dir, read)}
        if not checkpoints and not sample_sets:
            problems.extend(unlistable(files.plugin_dir(run_dir)))
        listing = RunListing(run, checkpoints, sample_sets, tuple(problems))
        with self._lock:
            self._listings[run] = (now, listing)
        return listing

    def _manifest(self, path, kind, problems=None):
        """The parsed manifest at `path` (cached by mtime), or None if it is unreadable or invalid (said in `problems`)."""
        problems = [] if problems is None else problems
        gfile = _gfile()
        try:
            stat = gfile.stat(path)
        except Exception:  # noqa: BLE001  (vanished between listing and stat)
            return None
        version = (stat.mtime_nsec, stat.length)
        # gfile's mtime has whole seconds on a local disk: a manifest rewritten within its second looks unchanged.
        settled = time.time() - stat.mtime_nsec / 1e9 > MTIME_RESOLUTION_S
        with self._lock:
            cached = self._manifests.get(path)
        if cached is not None and cached[0] == version and settled:
            problems.extend(cached[2:])
            return cached[1]
        problem = ()
        try:
            with gfile.GFile(path, "r") as f:
                manifest = metadata.parse_manifest(f.read(), kind)
        except XaiError as e:
            logger.warning("tb-xai skips manifest %s: %s", path, e)
            manifest, problem = None, ("%s is skipped: %s" % (_tail(path), e),)
        except Exception as e:  # noqa: BLE001  (I/O errors: skip now, retry on the next listing)
            logger.warning("tb-xai cannot read manifest %s: %s", path, e)
            problems.append("%s cannot be read: %s" % (_tail(path), e))
            return None
        with self._lock:
            self._manifests[path] = (version, manifest) + problem
        problems.extend(problem)
        return manifest


def _tail(path):
    """The last three parts of a manifest's path (e.g. 'xai/checkpoints/step-000000001.json'): enough to find it."""
    return "/".join(path.replace("\\", "/").rstrip("/").split("/")[-3:])


def unlistable(folder):
    """[a message] when `folder` exists but cannot be listed (permissions, a remote filesystem's error), else []."""
    gfile = _gfile()
    try:
        gfile.listdir(folder)
    except Exception as e:  # noqa: BLE001  (an absent folder is the normal 'no xai data here')
        try:
            if not gfile.exists(folder):
                return []
        except Exception:  # noqa: BLE001  (the filesystem fails on exists too: say the listing's error)
            pass
        return ["%s cannot be listed: %s" % (folder, getattr(e, "message", None) or e)]
    return []
