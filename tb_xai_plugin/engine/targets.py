"""Which class each image's attribution explains: predicted, true label, or a fixed class."""

import numpy as np

from tb_xai_plugin import model_info
from tb_xai_plugin.errors import XaiError

KINDS = ("predicted", "label", "class")


def check_target(target):
    """The target dict (None: predicted), or XaiError when it is not one of the KINDS."""
    target = {"kind": "predicted"} if target is None else target
    if not isinstance(target, dict) or target.get("kind") not in KINDS:
        raise XaiError("target must be {\"kind\": one of %s}, not %r" % (", ".join(KINDS), target))
    return target


def resolve_targets(target, count, labels, num_classes, probs=None):
    """int64 [count] class per image for target {"kind": predicted|label|class[, "index": k]}; predicted needs probs."""
    target = check_target(target)
    kind = target["kind"]
    if kind == "predicted":
        return np.argmax(probs, axis=1).astype(np.int64)
    if kind == "class":
        index = target.get("index")
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < num_classes:
            raise XaiError("target class must be an integer in [0, %d), not %r" % (num_classes, index))
        return np.full(count, index, dtype=np.int64)
    return _label_targets(labels, count, num_classes)


def _label_targets(labels, count, num_classes):
    """The true labels as targets; XaiError when missing, of the wrong length, or out of range."""
    if labels is None:
        raise XaiError("target 'label' needs labels, and these samples have none")
    labels = np.asarray(labels)
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise XaiError("labels must be %d integers, got shape %s of %s" % (count, list(labels.shape), labels.dtype))
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise XaiError(
            "target 'label': sample %d has label %d, not a class of this model (0..%d); -1 means unlabeled"
            % (bad[0], labels[bad[0]], num_classes - 1)
        )
    return labels.astype(np.int64)


def reason_head_unusable(model, method):
    """Why `method` cannot explain the classes of `model`'s head (model.head), or None."""
    if method.family == "pattern" and getattr(model, "head", None) in model_info.BINARY_HEADS:
        last = model.layers[-1]
        return "patterns are fitted per output unit, and the binary head %r (%s) gives its two classes one unit (z and -z)" % (
            last["name"], last["type"])
    return None
