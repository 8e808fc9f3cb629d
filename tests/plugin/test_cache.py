"""The result cache: byte budget, disk persistence, atomic files, damaged entries recomputed."""

import os

import numpy as np

from tb_xai_plugin.plugin.cache import ResultCache, key_digest

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


def test_a_half_written_temporary_file_is_never_read(tmp_path):
    cache = ResultCache(1 << 20, str(tmp_path))
    digest = key_digest(KEY)
    os.makedirs(tmp_path / digest[:2])
    (tmp_path / digest[:2] / (".tmp-%s.npz" % digest)).write_bytes(b"PK\x03\x04 half")
    assert cache.get(KEY) is None and cache.stats["unreadable"] == 0


def test_an_unwritable_directory_falls_back_to_memory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cache = ResultCache(1 << 20, str(blocker / "cache"))
    cache.put(KEY, {"map": np.ones(3, np.float32)})
    assert cache.directory is None and cache.get(KEY) is not None
