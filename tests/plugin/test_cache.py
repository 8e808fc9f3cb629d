"""The result cache: byte budget, disk persistence within a size budget (LRU), atomic files, damaged entries recomputed."""

import os
import subprocess
import sys

import numpy as np

from tb_xai_plugin.plugin.cache import PRUNE_TO, ResultCache, key_digest

KEY = ("map", "sha-a", "sha-s", "grad_cam", {"b": 1, "a": 2}, "predicted", None, None, 0, 3)


def entry_files(directory):
    return [os.path.join(d, f) for d, _, files in os.walk(directory) for f in files]


def test_keys_ignore_dict_order():
    assert key_digest(("m", {"a": 1, "b": 2})) == key_digest(("m", {"b": 2, "a": 1}))
    assert key_digest(("m", {"a": 1})) != key_digest(("m", {"a": 2}))


def test_memory_budget_evicts_the_least_recently_used():
    cache = ResultCache(budget_bytes=3 * 400, directory=None)
    for i in range(3):
        cache.put(("k", i), {"x": np.zeros(100, np.float32)})
    cache.get(("k", 0))  # now the most recent
    cache.put(("k", 3), {"x": np.zeros(100, np.float32)})
    assert cache.get(("k", 1)) is None
    assert cache.get(("k", 0)) is not None and cache.get(("k", 3)) is not None


def test_entries_survive_a_restart(tmp_path):
    value = {"map": np.arange(12, dtype=np.float32).reshape(3, 4), "target": np.int64(2)}
    first = ResultCache(1 << 20, str(tmp_path))
    first.put(KEY, value)
    first.flush()
    again = ResultCache(1 << 20, str(tmp_path))
    got = again.get(KEY)
    np.testing.assert_array_equal(got["map"], value["map"])
    assert int(got["target"]) == 2 and again.stats["disk_hits"] == 1
    assert not [f for f in entry_files(tmp_path) if os.path.basename(f).startswith(".tmp-")]


def test_a_damaged_entry_is_ignored_and_removed(tmp_path):
    first = ResultCache(1 << 20, str(tmp_path))
    first.put(KEY, {"map": np.ones((8, 8), np.float32)})
    first.flush()
    (path,) = entry_files(tmp_path)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    fresh = ResultCache(1 << 20, str(tmp_path))
    assert fresh.get(KEY) is None and fresh.stats["unreadable"] == 1
    assert not os.path.exists(path)
    fresh.put(KEY, {"map": np.ones((8, 8), np.float32)})  # recomputed and stored again
    fresh.flush()
    assert ResultCache(1 << 20, str(tmp_path)).get(KEY) is not None


# A writer whose process may write only FILE_LIMIT bytes per file: np.savez fails half-way (EFBIG).
HALF_WRITER = """
import resource, signal, sys
import numpy as np
from tb_xai_plugin.plugin.cache import ResultCache
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (%d, %d))
cache = ResultCache(1 << 20, sys.argv[1])
cache.put(%r, {"map": np.arange(16384, dtype=np.float32)})
cache.flush()
"""
FILE_LIMIT = 4096


def test_a_half_written_entry_is_never_read(tmp_path):
    script = HALF_WRITER % (FILE_LIMIT, FILE_LIMIT, KEY)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "could not write cache entry" in done.stderr  # the write really failed half-way
    assert entry_files(tmp_path) == []  # neither a partial entry nor a temporary file is left
    fresh = ResultCache(1 << 20, str(tmp_path))
    assert fresh.get(KEY) is None and fresh.stats["misses"] == 1 and fresh.stats["unreadable"] == 0


def test_the_disk_stays_within_its_budget_dropping_the_least_recently_used(tmp_path):
    value = {"map": np.zeros(4096, np.float32)}  # 16 KiB of data, about 16.6 KiB as .npz
    cache = ResultCache(0, str(tmp_path), disk_budget_bytes=5 * 17 * 1024)  # memory 0: every get reads the disk
    for i in range(5):
        cache.put(("k", i), value)
        cache.flush()
    assert cache.stats["pruned"] == 0 and len(entry_files(tmp_path)) == 5
    assert cache.get(("k", 0)) is not None  # the oldest written is now the most recently used
    cache.put(("k", 5), value)
    cache.flush()
    assert sum(os.path.getsize(f) for f in entry_files(tmp_path)) <= cache.disk_budget_bytes * PRUNE_TO
    assert cache.get(("k", 1)) is None and cache.get(("k", 2)) is None  # least recently used: gone
    for kept in (0, 4, 5):
        assert cache.get(("k", kept)) is not None, kept


def test_a_budget_counts_what_an_earlier_run_left_on_disk(tmp_path):
    value = {"map": np.zeros(4096, np.float32)}
    first = ResultCache(0, str(tmp_path))
    for i in range(6):
        first.put(("k", i), value)
        first.flush()
    later = ResultCache(0, str(tmp_path), disk_budget_bytes=3 * 17 * 1024)
    later.put(("k", 6), value)
    later.flush()
    assert sum(os.path.getsize(f) for f in entry_files(tmp_path)) <= later.disk_budget_bytes
    assert later.get(("k", 6)) is not None and later.get(("k", 0)) is None


def test_an_unwritable_directory_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = ResultCache(1 << 20, str(blocker / "cache"))
    cache.put(KEY, {"map": np.ones(3, np.float32)})
    assert cache.directory is None and cache.get(KEY) is not None
