"""Records every path a Python process opens or lists, into the file named by $XAI_PATH_AUDIT_LOG.

On PYTHONPATH, Python imports this module at start-up in every process, so the plugin's spawned
workers record too; the test process calls install() itself. Recorded: the audit events that carry
a path (open, listdir, scandir, ...), and the file reads that bypass them, made in C by h5py and by
TensorFlow's tf.io.gfile, whose Python entry points are wrapped as soon as those modules are loaded.
One line per path: "<pid>\t<event>\t<absolute path>".
"""

import os
import sys

PATH_EVENTS = ("open", "os.listdir", "os.scandir", "os.chdir", "os.rename", "os.remove", "shutil.copyfile", "shutil.rmtree")
GFILE_CALLS = ("listdir", "exists", "isdir", "stat", "glob", "walk", "copy", "rename", "remove", "rmtree", "makedirs")

_log_fd = None
_wrapped = set()


def record(event, path):
    """Append one line for `path` (str, bytes or os.PathLike; anything else, e.g. a file descriptor, is skipped)."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if isinstance(path, (str, bytes)) and _log_fd is not None:
        line = "%d\t%s\t%s\n" % (os.getpid(), event, os.path.abspath(os.fsdecode(path)))
        os.write(_log_fd, line.encode("utf-8", "backslashreplace"))


def _hook(event, args):
    """The audit hook: record path-carrying events, and wrap h5py / tf.io.gfile once they are imported."""
    if event in PATH_EVENTS and args:
        record(event, args[0])
    if len(_wrapped) < 2:
        _wrap_loaded_modules()


def _spy(owner, name, event):
    """Replace owner.name by a function that records its first argument, then calls the original."""
    original = getattr(owner, name)

    def call(path, *args, **kwargs):
        record(event, path)
        return original(path, *args, **kwargs)

    setattr(owner, name, call)


def _spy_init(cls, event):
    """Make cls(path, ...) record `path`."""
    original = cls.__init__

    def init(self, path, *args, **kwargs):
        record(event, path)
        original(self, path, *args, **kwargs)

    cls.__init__ = init


def _wrap_loaded_modules():
    """Wrap h5py.File and tf.io.gfile's calls in the modules already imported (each once)."""
    files = sys.modules.get("h5py._hl.files")
    if "h5py" not in _wrapped and files is not None and hasattr(files, "File"):
        _wrapped.add("h5py")
        _spy_init(files.File, "h5py.File")
    gfile = sys.modules.get("tensorflow._api.v2.io.gfile")
    if "gfile" not in _wrapped and gfile is not None and hasattr(gfile, "GFile"):
        _wrapped.add("gfile")
        _spy_init(gfile.GFile, "gfile.GFile")
        for name in GFILE_CALLS:
            if hasattr(gfile, name):
                _spy(gfile, name, "gfile." + name)


def install(log_path):
    """Start recording into `log_path` (appended to, shared by every process)."""
    global _log_fd
    if _log_fd is None:
        _log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        sys.addaudithook(_hook)


def stop():
    """Stop recording in this process (an audit hook stays installed for life, so it goes quiet)."""
    global _log_fd
    if _log_fd is not None:
        os.close(_log_fd)
        _log_fd = None


if os.environ.get("XAI_PATH_AUDIT_LOG"):
    install(os.environ["XAI_PATH_AUDIT_LOG"])
