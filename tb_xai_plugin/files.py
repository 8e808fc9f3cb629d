"""The plugin's files under <run>/plugins/xai/: paths, atomic writes, manifest I/O, the one listing and reader.

Everything goes through `tf.io.gfile` (TensorBoard's compat copy of it), so `gs://` and other
remote logdirs work. A file is written under `<final>.tmp-<uuid>` and renamed into place, so a
reader never sees half a file; temporary names are never listed as data. The library, the CLI and
the TensorBoard plugin list checkpoints and sample sets, and read sample sets, through this module
alone, so they agree on what a logdir holds. A sample set is read by rows (`open_sample_set`): a
process never holds a whole set, and checks its checksum once per (path, size, mtime).
"""

import collections
import hashlib
import io
import json
import logging
import os
import re
import shutil
import struct
import threading
import uuid
import zipfile

import numpy as np
from tensorboard.compat import tf

from tb_xai_plugin import metadata
from tb_xai_plugin.errors import NotFoundError, XaiError

logger = logging.getLogger(__name__)

TEMP_MARK = ".tmp-"
_CHUNK = 1 << 20
CHECKPOINT_MANIFEST = re.compile(r"^step-(\d{9,})\.json$")
SAMPLES_MANIFEST = re.compile(r"^(.+)\.json$")


def plugin_dir(run_dir):
    """<run_dir>/plugins/xai."""
    return os.path.join(run_dir, *metadata.PLUGIN_DIR)


def checkpoints_dir(run_dir):
    """<run_dir>/plugins/xai/checkpoints."""
    return os.path.join(plugin_dir(run_dir), metadata.CHECKPOINTS_DIR)


def samples_dir(run_dir):
    """<run_dir>/plugins/xai/samples."""
    return os.path.join(plugin_dir(run_dir), metadata.SAMPLES_DIR)


def checkpoint_paths(run_dir, step, fmt):
    """(data path, manifest path) of the checkpoint at `step`; the data is a file (keras, h5) or a folder (savedmodel)."""
    folder = checkpoints_dir(run_dir)
    return os.path.join(folder, metadata.checkpoint_filename(step, fmt)), os.path.join(folder, metadata.checkpoint_basename(step) + ".json")


def sample_paths(run_dir, name):
    """(data path, manifest path) of the sample set `name` (checked against metadata.NAME_PATTERN)."""
    stem = os.path.join(samples_dir(run_dir), metadata.check_name(name))
    return stem + ".npz", stem + ".json"


def is_temp(path):
    """True for a name written by this module that was not (yet) renamed into place."""
    return TEMP_MARK in os.path.basename(path.rstrip("/"))


def _temp_name(path):
    """A fresh temporary sibling of `path`: '<path>.tmp-<uuid4 hex>'."""
    return "%s%s%s" % (path.rstrip("/"), TEMP_MARK, uuid.uuid4().hex)


def ensure_dir(path):
    """Create folder `path` (and parents) or raise XaiError saying it cannot be written."""
    try:
        tf.io.gfile.makedirs(path)
        is_dir = tf.io.gfile.isdir(path)
    except (OSError, tf.errors.OpError) as e:
        raise XaiError("cannot write to %s: %s" % (path, _reason(e))) from e
    if not is_dir:
        raise XaiError("cannot write to %s: it is not a folder" % path)
    return path


def _reason(error):
    """The short message of an OSError or a TensorFlow OpError."""
    return getattr(error, "message", None) or str(error) or type(error).__name__


def remove_quietly(path):
    """Delete file or folder `path` if it exists; errors are ignored (used to clean up after a failure)."""
    try:
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        elif tf.io.gfile.exists(path):
            tf.io.gfile.remove(path)
    except (OSError, tf.errors.OpError):
        pass


def _publish(temp, path):
    """Rename finished `temp` to `path`, replacing what was there; remove `temp` on failure."""
    try:
        if tf.io.gfile.isdir(temp):
            _replace_dir(temp, path)
        else:
            tf.io.gfile.rename(temp, path, overwrite=True)
    except (OSError, tf.errors.OpError) as e:
        remove_quietly(temp)
        raise XaiError("cannot write %s: %s" % (path, _reason(e))) from e


def _replace_dir(temp, path):
    """Rename folder `temp` to `path`; an old `path` is first moved aside, then deleted."""
    old = None
    if tf.io.gfile.exists(path):
        old = _temp_name(path)
        tf.io.gfile.rename(path, old)
    tf.io.gfile.rename(temp, path)
    if old:
        remove_quietly(old)


class _HashingStream(io.RawIOBase):
    """A write-only, unseekable stream that passes bytes on to `sink` and hashes them on the way."""

    def __init__(self, sink):
        super().__init__()
        self.sink, self.digest, self.size = sink, hashlib.sha256(), 0

    def writable(self):
        """True: this stream is for writing."""
        return True

    def write(self, data):
        """Write `data` to the sink; return its length."""
        data = bytes(data)
        self.sink.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def tell(self):
        """Bytes written so far (zipfile asks; as seek() is unsupported, it writes a streamed zip)."""
        return self.size


def write_stream(path, produce):
    """Write what produce(stream) writes to `path` atomically, hashing it on the way: sha256 hex digest."""
    temp = _temp_name(path)
    try:
        with tf.io.gfile.GFile(temp, "wb") as sink:
            stream = _HashingStream(sink)
            produce(stream)
    except (OSError, tf.errors.OpError) as e:
        remove_quietly(temp)
        raise XaiError("cannot write %s: %s" % (path, _reason(e))) from e
    except BaseException:
        remove_quietly(temp)
        raise
    _publish(temp, path)
    return stream.digest.hexdigest()


def write_bytes(path, data):
    """Write `data` to `path` atomically (temporary name, then rename): sha256 hex digest."""
    return write_stream(path, lambda stream: stream.write(data))


def write_json(path, obj):
    """Write `obj` as indented JSON to `path` atomically."""
    write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))


def copy_in(local_path, path):
    """Copy a local file or folder to `path` (any gfile scheme) atomically: a file's sha256, None for a folder."""
    if not os.path.isdir(local_path):
        with open(local_path, "rb") as source:
            return write_stream(path, lambda stream: shutil.copyfileobj(source, stream, _CHUNK))
    temp = _temp_name(path)
    try:
        _copy_tree(local_path, temp)
    except (OSError, tf.errors.OpError) as e:
        remove_quietly(temp)
        raise XaiError("cannot write %s: %s" % (path, _reason(e))) from e
    _publish(temp, path)
    return None


def _copy_tree(source, target):
    """Copy every file under folder `source` to the same relative path under `target` (any gfile paths)."""
    tf.io.gfile.makedirs(target)
    for root, dirs, names in tf.io.gfile.walk(source):
        relative = os.path.relpath(root, source)
        out = target if relative == "." else os.path.join(target, relative)
        for d in dirs:
            tf.io.gfile.makedirs(os.path.join(out, d))
        for name in names:
            tf.io.gfile.copy(os.path.join(root, name), os.path.join(out, name), overwrite=True)


def sha256(path):
    """sha256 hex digest of the bytes of file `path`."""
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path, kind):
    """The parsed manifest at `path` (metadata.parse_manifest checks it); NotFoundError if absent."""
    try:
        with tf.io.gfile.GFile(path, "rb") as f:
            text = f.read().decode("utf-8")
    except tf.errors.NotFoundError as e:
        raise NotFoundError("no %s manifest at %s" % (kind, path)) from e
    except (OSError, tf.errors.OpError, UnicodeDecodeError) as e:
        raise XaiError("cannot read %s: %s" % (path, _reason(e))) from e
    return metadata.parse_manifest(text, kind)


def read_manifest_or_none(path, kind):
    """The manifest at `path`, or None (logged) if it is absent, unreadable or not a valid `kind` manifest."""
    try:
        return read_manifest(path, kind)
    except XaiError as e:
        logger.warning("tb-xai skips manifest %s: %s", path, e)
        return None


def list_names(folder):
    """The file names in `folder`, sorted, without temporaries; none if it does not exist or cannot be listed."""
    try:
        names = tf.io.gfile.listdir(folder)
    except (OSError, tf.errors.OpError):
        return []
    return sorted(n.rstrip("/") for n in names if not is_temp(n))


def _checkpoint_file(step, fmt):
    """The data file name of a checkpoint at `step` in format `fmt`; None for an unknown format."""
    return metadata.checkpoint_basename(step) + metadata.CHECKPOINT_FORMATS[fmt] if fmt in metadata.CHECKPOINT_FORMATS else None


def checkpoint_listing(run_dir, read=read_manifest_or_none):
    """[(data path, manifest)] by step: each step-N.json that `read` parses, whose step is N and file its format's step-N file."""
    folder = checkpoints_dir(run_dir)
    found = []
    for name in list_names(folder):
        match = CHECKPOINT_MANIFEST.match(name)
        if not match:
            continue
        step = int(match.group(1))
        manifest = read(os.path.join(folder, name), metadata.KIND_CHECKPOINT)
        if manifest is not None and manifest["step"] == step and manifest["file"] == _checkpoint_file(step, manifest["format"]):
            found.append((os.path.join(folder, manifest["file"]), manifest))
    return sorted(found, key=lambda entry: entry[1]["step"])


def sample_listing(run_dir, read=read_manifest_or_none):
    """[(data path, manifest)] by name: each <name>.json that `read` parses, naming itself and an existing <name>.npz."""
    folder = samples_dir(run_dir)
    names = list_names(folder)
    found = []
    for name in names:
        match = SAMPLES_MANIFEST.match(name)
        if not match or not metadata.NAME_PATTERN.match(match.group(1)):
            continue
        set_name = match.group(1)
        manifest = read(os.path.join(folder, name), metadata.KIND_SAMPLES)
        if manifest is not None and manifest["name"] == set_name and manifest["file"] == set_name + ".npz" and manifest["file"] in names:
            found.append((os.path.join(folder, manifest["file"]), manifest))
    return found


def checkpoint_manifests(run_dir):
    """The manifests of every checkpoint of a run, sorted by step (from the files, not the events)."""
    return [manifest for _, manifest in checkpoint_listing(run_dir)]


def sample_manifests(run_dir):
    """The manifests of every sample set of a run, sorted by name."""
    return [manifest for _, manifest in sample_listing(run_dir)]


def read_sample_set(path, sha256):
    """(images, labels int64) of a whole sample set (see open_sample_set); for small sets and tests only."""
    reader = open_sample_set(path, sha256)
    return reader.range(0, reader.count), reader.labels


def open_binary(path):
    """A readable, seekable binary file: open() for a local path, tf.io.gfile.GFile for any other scheme."""
    local = local_path(path)
    return open(local, "rb") if local is not None else tf.io.gfile.GFile(path, "rb")


def local_path(path):
    """The local file system path of `path` (a plain path or file://), or None for a remote scheme (gs://, s3://, ...)."""
    if path.startswith("file://"):
        return path[len("file://") :]
    return None if "://" in path else path


def file_stamp(path):
    """(size, mtime in ns) of file `path`: what tells a rewritten file from the one that was checked."""
    local = local_path(path)
    if local is not None:
        stat = os.stat(local)
        return int(stat.st_size), int(stat.st_mtime_ns)
    stat = tf.io.gfile.stat(path)
    return int(stat.length), int(stat.mtime_nsec)


class SampleSetReader:
    """One sample set's .npz read by rows: labels whole (small), images [N, H, W, C] at their byte offset.

    np.savez stores members uncompressed, so the images member is a plain .npy inside the zip: a row
    is `row_bytes` bytes at `offset + i * row_bytes`, read with seek + read (no memory map: mapped
    pages would count toward the reader's resident memory). A compressed member (a set zipped by
    hand) is decompressed once into `loaded`.
    """

    def __init__(self, path, labels, dtype, shape, offset=None, loaded=None):
        self.path, self.labels, self.dtype, self.shape = path, labels, dtype, tuple(shape)
        self.count = int(shape[0])
        self.offset, self.loaded = offset, loaded
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def range(self, start, stop):
        """Images [stop - start, H, W, C] of rows start..stop-1 (clipped to the set), in one read."""
        start, stop = max(0, int(start)), min(self.count, int(stop))
        if self.loaded is not None:
            return np.array(self.loaded[start:stop])
        with open_binary(self.path) as f:
            return self._read_run(f, start, max(start, stop))

    def rows(self, indices):
        """Images at `indices` (any order, repeats allowed), reading each run of consecutive rows once."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(indices) and (indices.min() < 0 or indices.max() >= self.count):
            raise XaiError("sample set %s has %d samples; index out of range" % (os.path.basename(self.path), self.count))
        if self.loaded is not None:
            return np.array(self.loaded[indices])
        wanted = np.unique(indices)
        out = np.empty((len(wanted),) + self.shape[1:], self.dtype)
        breaks = np.flatnonzero(np.diff(wanted) != 1) + 1
        with open_binary(self.path) as f:
            for run in np.split(np.arange(len(wanted)), breaks):
                if len(run):
                    out[run[0] : run[-1] + 1] = self._read_run(f, int(wanted[run[0]]), int(wanted[run[-1]]) + 1)
        return out[np.searchsorted(wanted, indices)]

    def _read_run(self, f, start, stop):
        """Rows start..stop-1 read from open file `f`; XaiError if the file ends early."""
        f.seek(self.offset + start * self.row_bytes)
        size = (stop - start) * self.row_bytes
        data = f.read(size)
        if len(data) != size:
            raise XaiError("sample set %s is truncated" % os.path.basename(self.path))
        return np.frombuffer(data, self.dtype).reshape((stop - start,) + self.shape[1:]).copy()


_CHECKED = collections.OrderedDict()  # (path, sha256, size, mtime_ns) -> SampleSetReader, most recent last
_CHECKED_KEPT = 32
_CHECKED_LOCK = threading.Lock()


def open_sample_set(path, sha256, stamp=None):
    """A SampleSetReader of the .npz at `path`; its bytes are checked against `sha256` once per (path, size,
    mtime) in this process, or not at all when `stamp` is the (size, mtime) of a check another process made.
    XaiError if it is unreadable or does not match."""
    name = os.path.basename(path)
    try:
        current = file_stamp(path)
    except (OSError, tf.errors.OpError) as e:
        raise XaiError("sample set %s is unreadable: %s" % (name, _reason(e))) from e
    key = (path, sha256) + current
    with _CHECKED_LOCK:
        if key in _CHECKED:
            _CHECKED.move_to_end(key)
            return _CHECKED[key]
    if stamp is None or tuple(stamp) != current:
        _check_sha256(path, sha256)
    reader = _open_npz(path)
    with _CHECKED_LOCK:
        _CHECKED[key] = reader
        while len(_CHECKED) > _CHECKED_KEPT:
            _CHECKED.popitem(last=False)
    return reader


def checked_stamp(path, sha256):
    """The (size, mtime) of `path` if this process checked its sha256 against `sha256` at that version, else None."""
    with _CHECKED_LOCK:
        stamps = [key[2:] for key in _CHECKED if key[:2] == (path, sha256)]
    if not stamps:
        return None
    try:
        current = file_stamp(path)
    except (OSError, tf.errors.OpError):
        return None
    return list(current) if current in stamps else None


def _check_sha256(path, sha256):
    """XaiError unless the bytes of `path`, read in chunks, have sha256 hex digest `sha256`."""
    name = os.path.basename(path)
    digest = hashlib.sha256()
    try:
        with open_binary(path) as f:
            for chunk in iter(lambda: f.read(_CHUNK * 8), b""):
                digest.update(chunk)
    except (OSError, tf.errors.OpError) as e:
        raise XaiError("sample set %s is unreadable: %s" % (name, _reason(e))) from e
    if digest.hexdigest() != sha256:
        raise XaiError("sample set %s does not match its manifest's checksum" % name)


def _open_npz(path):
    """A SampleSetReader for a checked .npz: labels read, the images member's .npy header and data offset found."""
    name = os.path.basename(path)
    try:
        with open_binary(path) as f, zipfile.ZipFile(f) as archive:
            with archive.open("labels.npy") as member:
                labels = np.lib.format.read_array(member, allow_pickle=False).astype(np.int64)
            info = archive.getinfo("images.npy")
            if info.compress_type != zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    images = np.lib.format.read_array(member, allow_pickle=False)
                return SampleSetReader(path, labels, images.dtype, images.shape, loaded=images)
            f.seek(info.header_offset)
            header = f.read(zipfile.sizeFileHeader)
            signature, *_, name_length, extra_length = struct.unpack(zipfile.structFileHeader, header)
            if signature != zipfile.stringFileHeader:
                raise XaiError("sample set %s is unreadable: no zip entry at the images' offset" % name)
            f.seek(info.header_offset + zipfile.sizeFileHeader + name_length + extra_length)
            shape, fortran, dtype = _npy_header(f)
            offset = f.tell()
    except XaiError:
        raise
    except Exception as e:  # noqa: BLE001  (a damaged file is the user's data: zipfile, KeyError, ValueError, struct)
        raise XaiError("sample set %s is unreadable: %s" % (name, e)) from e
    if fortran or len(shape) != 4 or dtype.hasobject or len(labels) != shape[0]:
        raise XaiError("sample set %s is unreadable: images %s %s for %d labels" % (name, shape, dtype, len(labels)))
    return SampleSetReader(path, labels, dtype, shape, offset=offset)


def _npy_header(f):
    """(shape, fortran_order, dtype) of the .npy header at `f`'s position, leaving `f` at the array's first byte."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(f)
