"""Per-sample statistics across models for the suggestion panel, from each model's probabilities.

For N samples, M models and K classes, with P_m [N, K] the class probabilities of model m:
    predicted_m = argmax_k P_m       top_score_m = max_k P_m       p_true_m = P_m[label]
    mean_top_score = mean_m top_score_m
    distinct_classes = |{predicted_m}|
    majority_right = (#{m: predicted_m == label} > M / 2), None without a label
    entropy = -sum_k p_k ln p_k  of  p = mean_m P_m  (nats; 0: all models certain of one class,
              ln K: the models' mean is uniform), which is high when models disagree or are unsure

A binary head's P_m is [1 - p, p]: the same statistics over its two classes. A multi-label head's
P_m[n, k] = sigmoid(z_k) is an independent yes/no per label, so per label (head="multilabel"):
    predicted_m = argmax_k P_m (the most probable label)   top_score_m = its probability
    p_true_m = P_m[label], the probability of the sample's labelled label
    majority_right = (#{m: P_m[label] > 1/2} > M / 2): most models say the labelled label is present
    entropy = mean_k H(q_k), H(q) = -q ln q - (1 - q) ln(1 - q), q = mean_m P_m[:, k]  (nats; 0: every
              model certain about every label, ln 2: a coin toss on each), no softmax across labels
"""

import numpy as np

from tb_xai_plugin.errors import XaiError


def per_model(probs, labels):
    """{"predicted", "top_score", "p_true"} lists for one model's probabilities [N, K]; p_true None where no label."""
    probs = np.asarray(probs, dtype=np.float64)
    predicted = probs.argmax(axis=1)
    top = probs.max(axis=1)
    if labels is None:
        p_true = [None] * len(probs)
    else:
        labelled = (labels >= 0) & (labels < probs.shape[1])
        safe = np.where(labelled, labels, 0)
        values = probs[np.arange(len(probs)), safe]
        p_true = [float(v) if ok else None for v, ok in zip(values, labelled)]
    return {"predicted": predicted.tolist(), "top_score": top.tolist(), "p_true": p_true}


def per_sample(all_probs, labels, head="softmax"):
    """{"mean_top_score", "distinct_classes", "majority_right", "entropy"} across models' probabilities [M][N, K]."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in all_probs])  # [M, N, K]
    predicted = stacked.argmax(axis=2)  # [M, N]
    mean_top = stacked.max(axis=2).mean(axis=0)
    distinct = [len(set(column)) for column in predicted.T.tolist()]
    mean_probs = stacked.mean(axis=0)  # [N, K]
    entropy = label_entropy(mean_probs) if head == "multilabel" else class_entropy(mean_probs)
    if labels is None:
        majority = [None] * stacked.shape[1]
    else:
        right = said_present(stacked, labels) if head == "multilabel" else (predicted == labels[None, :])
        right = right.sum(axis=0)
        majority = [bool(r * 2 > stacked.shape[0]) if label >= 0 else None for r, label in zip(right.tolist(), labels)]
    return {
        "mean_top_score": mean_top.tolist(),
        "distinct_classes": distinct,
        "majority_right": majority,
        "entropy": np.maximum(entropy, 0.0).tolist(),
    }


def plogp(p):
    """p ln p elementwise, 0 ln 0 = 0."""
    return p * np.log(np.where(p > 0, p, 1.0))


def class_entropy(probs):
    """[N]: -sum_k p_k ln p_k of each row of probs [N, K] (nats)."""
    return -plogp(probs).sum(axis=1)


def label_entropy(probs):
    """[N]: mean over labels of the binary entropy -q ln q - (1 - q) ln(1 - q) of probs [N, K] (nats)."""
    return -(plogp(probs) + plogp(1.0 - probs)).mean(axis=1)


def said_present(stacked, labels):
    """bool [M, N]: model m gives sample n's labelled label a probability above 1/2 (False where unlabelled)."""
    safe = np.where(labels >= 0, labels, 0)
    return (np.take_along_axis(stacked, np.broadcast_to(safe[None, :, None], stacked.shape[:2] + (1,)), axis=2)[..., 0] > 0.5) & (labels >= 0)


def common_head(heads):
    """The statistics' head kind for models of one task: "multilabel" or "softmax"; XaiError when they mix the two."""
    kinds = {"multilabel" if head == "multilabel" else "softmax" for head in heads}
    if len(kinds) > 1:
        raise XaiError("the models mix multi-label (sigmoid per label) and single-label heads; compare models of one task")
    return kinds.pop()


def empty(count):
    """per_sample's shape when no model could answer: every statistic null."""
    return {name: [None] * count for name in ("mean_top_score", "distinct_classes", "majority_right", "entropy")}


def agreeing_samples(predicted, max_samples):
    """(indices where every model predicts the same, at most max_samples of them evenly spaced: floor(j * n / max))."""
    stacked = np.asarray(predicted)
    same = (stacked == stacked[0]).reshape(len(stacked), stacked.shape[1], -1).all(axis=(0, 2))
    agreeing = np.flatnonzero(same)
    if len(agreeing) <= max_samples:
        return agreeing, agreeing
    return agreeing, agreeing[np.arange(max_samples) * len(agreeing) // max_samples]


def evidence_disagreement(rho):
    """[n]: 1 - the mean over model pairs (i < j) of rho [n, M, M] (NaN entries left out; NaN if none)."""
    rho = np.asarray(rho, dtype=np.float64)
    upper = np.triu_indices(rho.shape[1], k=1)
    pairs = rho[:, upper[0], upper[1]]
    finite = np.isfinite(pairs)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(finite, pairs, 0.0).sum(axis=1) / finite.sum(axis=1)
    return np.where(finite.any(axis=1), 1.0 - mean, np.nan)
