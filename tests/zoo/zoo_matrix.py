"""docs/models.md's matrix (architecture x method): one section per stack, its rows replaced by a full zoo run (test_zoo.py).

Pure Python: the zoo's model names (zoo_models.ZOO builds them) and the Markdown of a run's result. A run of some
models (TB_XAI_ZOO_MODELS) replaces only their rows; each row names the run it comes from.
"""

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import report  # noqa: E402 - bench/report.py: replace_section, the benchmarks' own section writer

MODELS_MD = os.path.join(ROOT, "docs", "models.md")
MODELS = ("transfer_learning", "from_scratch", "cifar_cnn", "multilabel", "efficientnet_nested", "resnet50",
          "densenet121", "mobilenet_v2", "convnext_tiny", "small_vit")
BACKENDS = {"keras2": "iNNvestigate backend, TF 2.14 / Keras 2", "keras3": "native backend, TF 2.21 / Keras 3"}


def grouped(cells, state):
    """{reason with the method id as "{m}": [method ids]} for the cells in `state`."""
    groups = {}
    for method_id, cell in cells.items():
        if cell["state"] == state:
            groups.setdefault(cell["detail"].replace(method_id, "{m}"), []).append(method_id)
    return groups


def row(name, cells, seconds, label):
    """One Markdown table row: the model, how many methods work, every other cell's reason, the run's seconds and label."""
    works = sum(cell["state"] == "works" for cell in cells.values())
    notes = []
    for state in ("refused", "failed"):
        for reason, methods in grouped(cells, state).items():
            notes.append("**%s** %s: %s" % (state, ", ".join(methods), reason.replace("|", "\\|").replace("\n", " ")))
    return "| %s | %d of %d | %s | %s | %s |" % (name, works, len(cells), "<br>".join(notes), seconds, label)


def run_label():
    """A run's label for its rows, taken as it starts: the UTC date and time, and the commit the working tree is at."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return "%s, %s" % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), commit or "no git")


def section(result, label, kept=()):
    """The Markdown section of one stack: the rows of `result`'s models (labelled `label`), then the `kept` rows, by name."""
    stack = result["stack"]
    rows = dict(kept)
    rows.update({name: row(name, cells, result["seconds"].get(name, ""), label) for name, cells in result["models"].items()})
    lines = ["## %s (%s)" % (stack, BACKENDS.get(stack, stack)), "",
             "| model | maps | refused before compute (reason) / failed | seconds | run |", "|---|---|---|---|---|"]
    return "\n".join(lines + [rows[name] for name in sorted(rows)])


def rows_in_section(stack, path=MODELS_MD):
    """{model: its table row} in the stack's section of `path` now (a row from before the run column gets "earlier run")."""
    begin, end = report.marks("zoo %s" % stack)
    text = open(path, encoding="utf-8").read()
    if begin not in text:
        return {}
    rows = {}
    for line in text.split(begin, 1)[1].split(end, 1)[0].splitlines():
        cells = line.split(" | ")
        if line.startswith("| ") and cells[0][2:] in MODELS:
            rows[cells[0][2:]] = line if len(cells) == 5 else line + " earlier run |"
    return rows


def write_section(result, label):
    """Replace the rows of `result`'s models in this stack's section of docs/models.md; the other models' rows stay."""
    kept = rows_in_section(result["stack"])
    report.replace_section("zoo %s" % result["stack"], section(result, label, kept), path=MODELS_MD)
