"""The README's "Log from your own training" examples run as written and log what they promise."""

import os
import pathlib
import re
import subprocess
import sys

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def python_blocks():
    """The README's ```python blocks, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_readme_examples_log_checkpoints_and_samples(tmp_path):
    script = "\n".join(python_blocks())
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    for run in ("cnn", "custom"):
        xai = tmp_path / "logs" / run / "plugins" / "xai"
        assert sorted(p.name for p in (xai / "checkpoints").glob("*.json")) == [
            "step-%09d.json" % step for step in (1, 2, 3)
        ]
        assert (xai / "samples" / "validation.npz").exists()
    assert (tmp_path / "logs" / "cnn" / "train").is_dir()
