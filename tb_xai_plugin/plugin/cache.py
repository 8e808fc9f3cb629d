"""Computed results (predictions, maps, activations) in memory within a byte budget and on disk.

A value is a dict of numpy arrays. `put` stores in memory at once and hands the disk write to a
background thread, so answering a request never waits on the disk (`flush` waits for it). Its key is a tuple of JSON values (checkpoint checksum,
sample-set checksum, method, canonical parameters, target, layer, neuron, index, ...), hashed to
a file name. Disk entries are written to a temporary file and renamed into place, so a reader sees
a whole entry or none; an entry that cannot be read is deleted and counts as a miss. The disk
holds at most `disk_budget_bytes`: a file's modification time is its last use (set on write and
on every hit), and past the budget the least recently used files are deleted, down to
PRUNE_TO of the budget so that pruning (a walk of the folder) runs seldom.
"""

import collections
import hashlib
import json
import logging
import os
import queue
import tempfile
import threading
import time

import numpy as np

logger = logging.getLogger(__name__)

PRUNE_TO = 0.9


def canonical_json(value):
    """JSON text of `value` with sorted keys and no spaces: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def key_digest(key):
    """sha256 hex digest of the canonical JSON of a key tuple."""
    return hashlib.sha256(canonical_json(list(key)).encode("utf-8")).hexdigest()


def value_nbytes(value):
    """Bytes held by a dict of arrays."""
    return sum(np.asarray(a).nbytes for a in value.values())


class ResultCache:
    """An LRU of results bounded by `budget_bytes`, backed by `.npz` files under `directory` (None: memory
    only) bounded by `disk_budget_bytes` (None: unbounded)."""

    def __init__(self, budget_bytes, directory=None, disk_budget_bytes=None):
        self.budget_bytes = int(budget_bytes)
        self.directory = directory
        self.disk_budget_bytes = None if disk_budget_bytes is None else int(disk_budget_bytes)
        self._disk_bytes = None  # bytes on disk as far as this process knows; None: not counted yet
        self.stats = collections.Counter()
        self._entries = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._writes = queue.Queue()
        self._writer = None
        if directory is not None:
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as e:
                logger.warning("tb-xai cache dir %s unusable (%s): caching in memory only", directory, e)
                self.directory = None

    def get(self, key):
        """The value stored under `key` (memory first, then disk), or None."""
        digest = key_digest(key)
        with self._lock:
            value = self._entries.get(digest)
            if value is not None:
                self._entries.move_to_end(digest)
                self.stats["memory_hits"] += 1
        if value is not None:
            self._touch(digest)
            return value
        value = self._read(digest)
        if value is None:
            self.stats["misses"] += 1
            return None
        self.stats["disk_hits"] += 1
        self._touch(digest)
        self._remember(digest, value)
        return value

    def put(self, key, value):
        """Store `value` (a dict of arrays) under `key` in memory and on disk."""
        value = {name: np.asarray(array) for name, array in value.items()}
        digest = key_digest(key)
        self._remember(digest, value)
        if self.directory is not None:
            self._start_writer()
            self._writes.put((digest, value))

    @property
    def memory_bytes(self):
        """Bytes of the values held in memory (at most budget_bytes)."""
        return self._bytes

    def flush(self):
        """Wait until every entry put so far is on disk."""
        if self._writer is not None:
            self._writes.join()

    def _start_writer(self):
        """Start the disk-writing thread on first use."""
        with self._lock:
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_loop, name="tb-xai-cache-writer", daemon=True)
                self._writer.start()

    def _write_loop(self):
        """The writer thread: write queued entries one by one."""
        while True:
            digest, value = self._writes.get()
            try:
                self._write(digest, value)
            finally:
                self._writes.task_done()

    def _remember(self, digest, value):
        """Insert into the in-memory LRU, evicting the oldest entries beyond the budget."""
        size = value_nbytes(value)
        if size > self.budget_bytes:
            return
        with self._lock:
            old = self._entries.pop(digest, None)
            if old is not None:
                self._bytes -= value_nbytes(old)
            self._entries[digest] = value
            self._bytes += size
            while self._bytes > self.budget_bytes:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= value_nbytes(evicted)

    def _path(self, digest):
        """The file of an entry: <directory>/<first two hex digits>/<digest>.npz."""
        return os.path.join(self.directory, digest[:2], digest + ".npz")

    def _write(self, digest, value):
        """Write the entry atomically: a temporary file in the same folder, then os.replace."""
        if self.directory is None:
            return
        path = self._path(digest)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=os.path.dirname(path))
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, **value)
                os.replace(temp, path)
            except BaseException:
                os.unlink(temp)
                raise
            self._touch(digest)
            self._count_disk(os.path.getsize(path))
        except OSError as e:
            logger.warning("tb-xai could not write cache entry %s: %s", path, e)

    def _touch(self, digest):
        """Mark an entry's file as used now (its modification time), if it is on disk."""
        if self.directory is None:
            return
        now = time.time_ns()
        try:
            os.utime(self._path(digest), ns=(now, now))
        except OSError:
            pass  # not written yet, or pruned: nothing to mark

    def _count_disk(self, size):
        """Add a written file's size to the disk total; prune when the total passes the budget."""
        if self.disk_budget_bytes is None:
            return
        if self._disk_bytes is None:
            self._disk_bytes = sum(size for _, size, _ in self._disk_files())
        else:
            self._disk_bytes += size
        if self._disk_bytes > self.disk_budget_bytes:
            self.prune(int(self.disk_budget_bytes * PRUNE_TO))

    def _disk_files(self):
        """[(last use ns, size, path)] of every entry file (temporary files of writes in flight left out)."""
        found = []
        for folder, _, names in os.walk(self.directory):
            for name in names:
                if name.endswith(".npz") and not name.startswith(".tmp-"):
                    path = os.path.join(folder, name)
                    try:
                        info = os.stat(path)
                    except OSError:
                        continue  # deleted meanwhile (another process pruning)
                    found.append((info.st_mtime_ns, info.st_size, path))
        return found

    def prune(self, target_bytes):
        """Delete the least recently used entry files until the folder holds at most `target_bytes`."""
        files = sorted(self._disk_files())
        total = sum(size for _, size, _ in files)
        for _, size, path in files:
            if total <= target_bytes:
                break
            try:
                os.unlink(path)
                self.stats["pruned"] += 1
            except OSError:
                pass
            total -= size
        self._disk_bytes = total

    def _read(self, digest):
        """The entry's arrays from disk, or None if absent or unreadable (then the file is removed)."""
        if self.directory is None:
            return None
        path = self._path(digest)
        if not os.path.exists(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as npz:
                return {name: npz[name] for name in npz.files}
        except Exception as e:  # noqa: BLE001  (any damage means: recompute)
            logger.warning("tb-xai ignores unreadable cache entry %s: %s", path, e)
            self.stats["unreadable"] += 1
            try:
                os.unlink(path)
            except OSError:
                pass
            return None
