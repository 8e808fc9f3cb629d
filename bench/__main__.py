"""Run every benchmark script in bench/ (`make bench`, or `python -m bench [NAME ...]`), one process each."""

import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def scripts(names):
    """The bench scripts to run: those named (without .py), or all of them."""
    found = sorted(p for p in glob.glob(os.path.join(HERE, "*.py")) if not os.path.basename(p).startswith("_"))
    if names:
        found = [p for p in found if os.path.basename(p)[:-3] in names]
    return found


def main(names):
    """Run each script in its own process; exit 1 if any failed."""
    failed = []
    for path in scripts(names):
        print("== %s" % os.path.basename(path), flush=True)
        if subprocess.run([sys.executable, path], cwd=os.path.dirname(HERE)).returncode != 0:
            failed.append(os.path.basename(path))
    if failed:
        print("failed: %s" % ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
