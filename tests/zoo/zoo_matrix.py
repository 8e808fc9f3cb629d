"""docs/models.md's matrix (architecture x method): one section per stack, replaced by a full zoo run (test_zoo.py).

Pure Python: the zoo's model names (zoo_models.ZOO builds them) and the Markdown of a run's result.
"""

import os
import sys

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


def row(name, cells, seconds):
    """One Markdown table row: the model, how many methods work, and every other cell's reason."""
    works = sum(cell["state"] == "works" for cell in cells.values())
    notes = []
    for state in ("refused", "failed"):
        for reason, methods in grouped(cells, state).items():
            notes.append("**%s** %s: %s" % (state, ", ".join(methods), reason.replace("|", "\\|").replace("\n", " ")))
    return "| %s | %d of %d | %s | %s |" % (name, works, len(cells), "<br>".join(notes), seconds)


def section(result):
    """The Markdown section of one stack's full zoo run."""
    stack = result["stack"]
    lines = ["## %s (%s)" % (stack, BACKENDS.get(stack, stack)), "",
             "| model | maps | refused before compute (reason) / failed | seconds |", "|---|---|---|---|"]
    lines += [row(name, result["models"][name], result["seconds"].get(name, "")) for name in sorted(result["models"])]
    return "\n".join(lines)


def write_section(result):
    """Replace this stack's section of docs/models.md with `result`'s matrix."""
    report.replace_section("zoo %s" % result["stack"], section(result), path=MODELS_MD)
