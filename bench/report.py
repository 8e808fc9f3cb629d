"""docs/benchmarks.md holds each bench's current figures, one section per bench and setting: a run replaces its own.

A section lies between the lines `<!-- bench: KEY -->` and `<!-- /bench: KEY -->`; the prose around the
sections is written by hand. Earlier figures are in git's history of the file, not in the file.
"""

import os

BENCHMARKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "benchmarks.md")


def marks(key):
    """The opening and closing lines of the section named `key`."""
    return "<!-- bench: %s -->" % key, "<!-- /bench: %s -->" % key


def replace_section(key, text, path=BENCHMARKS):
    """Put `text` between the marks of `key` in `path`, in place of what was there; at the end of the file if it has none."""
    begin, end = marks(key)
    existing = open(path, encoding="utf-8").read() if os.path.exists(path) else "# Benchmarks\n"
    block = "%s\n%s\n%s" % (begin, text.strip("\n"), end)
    if begin in existing and end in existing.split(begin, 1)[1]:
        head, rest = existing.split(begin, 1)
        updated = head + block + rest.split(end, 1)[1]
    else:
        updated = existing.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(updated)
