"""Local copies of checkpoints that live on a remote filesystem (gs://, s3://, hdfs://): h5py and Keras read local files only.

`local_checkpoint(path, manifest)` returns `path` itself for a local file, else a copy in the cache folder,
content-addressed by the manifest's checksums: `<cache>/<file_sha256>/<name>` for a file (its bytes are
hashed while they stream and must equal `file_sha256`), `<cache>/<file_sha256>-<weights_sha256>/<name>` for a
SavedModel folder (its `saved_model.pb` is checked; the weights are checked after loading, as for every
checkpoint). A copy is written under a temporary name and renamed into place, so a reader never meets half
a file and processes sharing the folder agree. The folder is the worker's (`set_cache_dir`, from the
plugin's --xai_cache_dir) or DEFAULT_DIR; the least recently used copies go once it holds more than
`budget_bytes`.
"""

import contextlib
import hashlib
import os
import shutil
import uuid

from tb_xai_plugin.errors import NotFoundError, XaiError

DEFAULT_DIR = "~/.cache/tb-xai/checkpoints"
DEFAULT_BUDGET_BYTES = 8 << 30
_CHUNK = 4 << 20
_settings = {"dir": DEFAULT_DIR, "budget": DEFAULT_BUDGET_BYTES}


def set_cache_dir(path, budget_bytes=DEFAULT_BUDGET_BYTES):
    """Use folder `path` (and at most `budget_bytes` in it) for this process's checkpoint copies."""
    _settings.update(dir=path, budget=int(budget_bytes))


def is_remote(path):
    """True for a URL of a filesystem other than the local disk (gs://bucket/..., s3://...); file:// is local."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and scheme.lower() != "file"


def local_checkpoint(path, manifest):
    """A local path holding the checkpoint at `path`: `path` itself on the local disk, else a checked cached copy."""
    if path.lower().startswith("file://"):
        return path[len("file://") :]
    if not is_remote(path):
        return path
    from tensorboard.compat import tf

    try:
        is_dir = tf.io.gfile.isdir(path)
        exists = is_dir or tf.io.gfile.exists(path)
    except tf.errors.OpError as e:
        raise XaiError("checkpoint %s cannot be read: %s" % (path, getattr(e, "message", e))) from e
    if not exists:
        raise NotFoundError("checkpoint file %s is missing" % path.rstrip("/").rsplit("/", 1)[-1])
    key = manifest["file_sha256"] + ("-" + manifest["weights_sha256"] if is_dir else "")
    folder = os.path.join(os.path.expanduser(_settings["dir"]), key)
    target = os.path.join(folder, path.rstrip("/").rsplit("/", 1)[-1])
    if not os.path.exists(target):
        _fetch(path, target, manifest["file_sha256"], is_dir)
        prune(os.path.dirname(folder), _settings["budget"], keep=folder)
    os.utime(folder)  # recency for prune
    return target


def _fetch(path, target, file_sha256, is_dir):
    """Copy remote `path` (a file or a SavedModel folder) to local `target` through a temporary name, checked."""
    from tensorboard.compat import tf

    os.makedirs(os.path.dirname(target), exist_ok=True)
    temp = "%s.tmp-%s" % (target, uuid.uuid4().hex)
    try:
        if is_dir:
            _copy_tree(path, temp)
            digest = _sha256_local(os.path.join(temp, "saved_model.pb"))
        else:
            digest = _copy_file(path, temp)
        if digest != file_sha256:
            raise XaiError("checkpoint %s does not match its manifest's file_sha256" % os.path.basename(target))
        try:
            os.replace(temp, target)
        except OSError:
            if not os.path.exists(target):  # else another process placed the same content first
                raise
    except tf.errors.OpError as e:
        raise XaiError("checkpoint %s cannot be read: %s" % (path, getattr(e, "message", e))) from e
    finally:
        if os.path.isdir(temp):
            shutil.rmtree(temp, ignore_errors=True)
        elif os.path.exists(temp):
            os.remove(temp)
        with contextlib.suppress(OSError):  # a failed copy leaves no empty folder (one still in use is not empty)
            os.rmdir(os.path.dirname(target))


def _copy_file(source, target):
    """Stream remote file `source` to local `target`; the sha256 hex digest of its bytes."""
    from tensorboard.compat import tf

    digest = hashlib.sha256()
    with tf.io.gfile.GFile(source, "rb") as f, open(target, "wb") as out:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _copy_tree(source, target):
    """Copy every file under remote folder `source` to the same relative path under local `target`."""
    from tensorboard.compat import tf

    root = source.rstrip("/")
    for folder, _, names in tf.io.gfile.walk(root):
        relative = folder.rstrip("/")[len(root) :].lstrip("/")
        os.makedirs(os.path.join(target, relative), exist_ok=True)
        for name in names:
            _copy_file(folder.rstrip("/") + "/" + name, os.path.join(target, relative, name))


def _sha256_local(path):
    """sha256 hex digest of local file `path` ('' when it is absent)."""
    if not os.path.exists(path):
        return ""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _size(folder):
    """Bytes of the files under `folder`."""
    return sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(folder) for n in names)


def prune(cache, budget_bytes, keep=None):
    """Delete the least recently used copies in `cache` (not `keep`) until the rest fit in `budget_bytes`."""
    entries = [os.path.join(cache, n) for n in os.listdir(cache) if ".tmp-" not in n] if os.path.isdir(cache) else []
    entries.sort(key=lambda p: os.path.getmtime(p))
    sizes = {p: _size(p) for p in entries}
    total = sum(sizes.values())
    for entry in entries:
        if total <= budget_bytes:
            break
        if entry != keep:
            shutil.rmtree(entry, ignore_errors=True)
            total -= sizes[entry]
