"""The entry point TensorBoard loads: light to import, its flags, and the plugin it builds."""

import argparse
import importlib.metadata
import subprocess
import sys

import pytest
from tensorboard.plugins import base_plugin

from tb_xai_plugin.plugin.loader import XaiLoader
from tb_xai_plugin.plugin.xai_plugin import XaiPlugin


def parse(*argv):
    parser = argparse.ArgumentParser()
    XaiLoader().define_flags(parser)
    return parser.parse_args(list(argv))


def test_the_entry_point_names_the_loader():
    points = importlib.metadata.entry_points(group="tensorboard_plugins")
    (xai,) = [p for p in points if p.name == "xai"]
    assert xai.load() is XaiLoader


def test_importing_the_loader_loads_neither_tensorflow_nor_the_engine():
    code = (
        "import sys, tb_xai_plugin.plugin.loader; "
        "heavy = [m for m in ('tensorflow', 'innvestigate', 'keras', 'tb_xai_plugin.engine') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_flag_defaults():
    flags = parse()
    assert (flags.xai_workers, flags.xai_cache_mb, flags.xai_cache_dir, flags.xai_allow_unsafe_models) == (
        1, 512, "~/.cache/tb-xai", False)  # fmt: skip
    assert parse("--xai_workers", "3", "--xai_allow_unsafe_models").xai_workers == 3
    assert parse().xai_cache_dir_mb == 2048 and parse("--xai_cache_dir_mb", "10").xai_cache_dir_mb == 10


@pytest.mark.parametrize(
    "argv",
    [("--xai_workers", "0"), ("--xai_workers", "65"), ("--xai_cache_mb", "-1"), ("--xai_cache_dir_mb", "0")],
)
def test_bad_flags_are_refused(argv):
    with pytest.raises(base_plugin.FlagsError):
        XaiLoader().fix_flags(parse(*argv))


def test_load_builds_the_plugin_without_starting_workers(tmp_path):
    flags = parse("--xai_cache_dir", str(tmp_path / "cache"))
    plugin = XaiLoader().load(base_plugin.TBContext(logdir=str(tmp_path), flags=flags))
    try:
        assert isinstance(plugin, XaiPlugin) and plugin.plugin_name == "xai"
        assert plugin.data_plugin_names() == ("xai",) and plugin.is_active() is False
        meta = plugin.frontend_metadata()
        assert (meta.es_module_path, meta.tab_name) == ("/index.js", "XAI")
        assert plugin.pool.pids() == [] and plugin.cache.directory == str(tmp_path / "cache")
        assert plugin.cache.disk_budget_bytes == 2048 << 20
    finally:
        plugin.close()
