"""The `tensorboard_plugins` entry point: the plugin's flags, and the plugin built on demand.

TensorBoard imports this module at start, so it imports nothing heavy: the plugin module (and
through it TensorFlow, lazily) loads only in `load`.
"""

from tensorboard.plugins import base_plugin


class XaiLoader(base_plugin.TBLoader):
    """Defines --xai_* flags and builds XaiPlugin."""

    def define_flags(self, parser):
        """Add the --xai_* flags to TensorBoard's parser."""
        group = parser.add_argument_group("xai plugin")
        group.add_argument(
            "--xai_workers", type=int, default=1, help="worker processes that compute attributions (default 1)"
        )
        group.add_argument(
            "--xai_cache_mb", type=int, default=512, help="memory budget of the result cache in MiB (default 512)"
        )
        group.add_argument(
            "--xai_cache_dir",
            default="~/.cache/tb-xai",
            help="folder of the on-disk result cache (default ~/.cache/tb-xai; empty: memory only)",
        )
        group.add_argument(
            "--xai_cache_dir_mb",
            type=int,
            default=2048,
            help="size budget of the on-disk result cache in MiB; past it the least recently used "
            "entries are deleted (default 2048)",
        )
        group.add_argument(
            "--xai_worker_memory_mb",
            type=int,
            default=0,
            help="a worker process whose resident memory passes this many MiB is stopped and its request "
            "answers 503 (default 0: no limit; a worker needs about 500 MiB to start)",
        )
        group.add_argument(
            "--xai_allow_unsafe_models",
            action="store_true",
            help="load checkpoints with Lambda layers, which run code stored in the file (default off)",
        )

    def fix_flags(self, flags):
        """FlagsError for a worker count outside 1..64, a negative cache or memory budget, or a disk budget under 1 MiB."""
        if flags.xai_workers < 1 or flags.xai_workers > 64:
            raise base_plugin.FlagsError("--xai_workers must be within 1..64")
        if flags.xai_cache_mb < 0:
            raise base_plugin.FlagsError("--xai_cache_mb must not be negative")
        if getattr(flags, "xai_cache_dir_mb", 1) < 1:
            raise base_plugin.FlagsError("--xai_cache_dir_mb must be at least 1 (an empty --xai_cache_dir turns the disk cache off)")
        if getattr(flags, "xai_worker_memory_mb", 0) < 0:
            raise base_plugin.FlagsError("--xai_worker_memory_mb must not be negative")

    def load(self, context):
        """The XaiPlugin (imported only now: the loader stays light)."""
        from tb_xai_plugin.plugin.xai_plugin import XaiPlugin

        return XaiPlugin(context)
