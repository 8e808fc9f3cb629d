"""Precomputed results (`tb-xai precompute`) in the logdir, read before anything is computed.

A checkpoint's results live in its run, in a folder named like the checkpoint:
`<run>/plugins/xai/results/step-<N>/<d[:2]>/<d>.npz`, where `d` is `cache.key_digest(key)` of the
very cache key the service computes them under (checkpoint and sample-set checksums, engine
versions, method, parameters, target, ...), so a result is found only for the request it answers,
and deleting a checkpoint (retention) deletes its results folder with it. Each file holds the value's arrays plus KEY_FIELD, the key's canonical
JSON, checked on read. Files are written whole under a temporary name and renamed into place
(files.write_stream), and read through tf.io.gfile, so a remote logdir works. Which digests a
checkpoint holds is listed once per `ttl_s`, so a miss costs no file access.
"""

import io
import logging
import os
import re
import threading
import time

import numpy as np

from tb_xai_plugin import metadata
from tb_xai_plugin.plugin.cache import canonical_json, key_digest

logger = logging.getLogger(__name__)

RESULTS_DIR = "results"
KEY_FIELD = "_key"  # the key's canonical JSON as uint8, stored beside the value's arrays
CHECKPOINT_STEM = re.compile(r"^(step-\d{9,})")  # the checkpoint's file name without its format's suffix


def _gfile():
    """tf.io.gfile, through TensorBoard's lazy TensorFlow import."""
    from tensorboard.compat import tf

    return tf.io.gfile


def _join(*parts):
    """Join path parts with '/' for URLs (gs://...) and the OS separator otherwise."""
    return "/".join(p.rstrip("/") for p in parts) if "://" in parts[0] else os.path.join(*parts)


def results_dir_of_checkpoint(checkpoint_path):
    """<run>/plugins/xai/results/step-<N> of the checkpoint at <run>/plugins/xai/checkpoints/step-<N>[.suffix] (None: no such name)."""
    path = checkpoint_path.rstrip("/")
    stem = CHECKPOINT_STEM.match(os.path.basename(path))
    return None if stem is None else _join(os.path.dirname(os.path.dirname(path)), RESULTS_DIR, stem.group(1))


def results_dir(run_dir, step=None):
    """<run_dir>/plugins/xai/results, or the folder of the checkpoint at `step` in it."""
    folder = _join(run_dir, *metadata.PLUGIN_DIR, RESULTS_DIR)
    return folder if step is None else _join(folder, metadata.checkpoint_basename(step))


def result_path(folder, digest):
    """The file of one result: <folder>/<first two hex digits>/<digest>.npz."""
    return _join(folder, digest[:2], digest + ".npz")


def encode(key, value):
    """The .npz bytes of a result: its arrays and KEY_FIELD."""
    arrays = {name: np.asarray(array) for name, array in value.items()}
    arrays[KEY_FIELD] = np.frombuffer(canonical_json(list(key)).encode("utf-8"), dtype=np.uint8)
    out = io.BytesIO()
    np.savez(out, **arrays)
    return out.getvalue()


def decode(data, key):
    """The value in .npz bytes; None when its KEY_FIELD is not `key` or the bytes are no such file."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            value = {name: npz[name] for name in npz.files}
    except Exception:  # noqa: BLE001  (zipfile, ValueError, KeyError: a damaged file is a miss)
        return None
    stored = value.pop(KEY_FIELD, None)
    if stored is None or stored.tobytes().decode("utf-8", "replace") != canonical_json(list(key)):
        return None
    return value


class ResultStore:
    """Reads the results precomputed into each run (see the module docstring); `stats` counts hits and misses."""

    def __init__(self, ttl_s=10.0):
        self.ttl_s = ttl_s
        self.stats = {"hits": 0, "misses": 0, "unreadable": 0}
        self._digests = {}  # results folder -> (time listed, frozenset of digests)
        self._lock = threading.Lock()

    def get(self, checkpoint_path, key):
        """The value precomputed under `key` for the checkpoint at `checkpoint_path`, or None."""
        folder = results_dir_of_checkpoint(checkpoint_path)
        digest = key_digest(key)
        if folder is None or digest not in self._listed(folder):
            self.stats["misses"] += 1
            return None
        path = result_path(folder, digest)
        try:
            with _gfile().GFile(path, "rb") as f:
                value = decode(f.read(), key)
        except Exception as e:  # noqa: BLE001  (deleted since the listing, or an I/O error: compute instead)
            logger.warning("tb-xai cannot read precomputed result %s: %s", path, e)
            value = None
        if value is None:
            self.stats["unreadable"] += 1
            return None
        self.stats["hits"] += 1
        return value

    def has(self, checkpoint_path, key):
        """Whether a result for `key` is stored for the checkpoint at `checkpoint_path` (as last listed)."""
        folder = results_dir_of_checkpoint(checkpoint_path)
        return folder is not None and key_digest(key) in self._listed(folder)

    def _listed(self, folder):
        """The digests in `folder`, listed again when the listing is older than ttl_s."""
        now = time.monotonic()
        with self._lock:
            cached = self._digests.get(folder)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        digests = frozenset(_digests_in(folder))
        with self._lock:
            self._digests[folder] = (now, digests)
        return digests


def _digests_in(folder):
    """The digests of the result files in `folder` (temporaries left out); none if it does not exist."""
    gfile = _gfile()
    try:
        paths = gfile.glob(result_path(folder, "*"))  # <folder>/*/*.npz
    except Exception:  # noqa: BLE001  (no such folder, or unlistable: nothing precomputed)
        return []
    names = (os.path.basename(p) for p in paths)
    return [n[: -len(".npz")] for n in names if n.endswith(".npz") and ".tmp-" not in n]
