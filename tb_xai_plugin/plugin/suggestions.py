"""Per-sample statistics across models for the suggestion panel, from each model's probabilities.

For N samples, M models and K classes, with P_m [N, K] the class probabilities of model m:
    predicted_m = argmax_k P_m       top_score_m = max_k P_m       p_true_m = P_m[label]
    mean_top_score = mean_m top_score_m
    distinct_classes = |{predicted_m}|
    majority_right = (#{m: predicted_m == label} > M / 2), None without a label
    entropy = -sum_k p_k ln p_k  of  p = mean_m P_m  (nats; 0: all models certain of one class,
              ln K: the models' mean is uniform), which is high when models disagree or are unsure
"""

import numpy as np


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


def per_sample(all_probs, labels):
    """{"mean_top_score", "distinct_classes", "majority_right", "entropy"} across models' probabilities [M][N, K]."""
    stacked = np.stack([np.asarray(p, dtype=np.float64) for p in all_probs])  # [M, N, K]
    predicted = stacked.argmax(axis=2)  # [M, N]
    mean_top = stacked.max(axis=2).mean(axis=0)
    distinct = [len(set(column)) for column in predicted.T.tolist()]
    mean_probs = stacked.mean(axis=0)  # [N, K]
    logs = np.log(np.where(mean_probs > 0, mean_probs, 1.0))
    entropy = -(mean_probs * logs).sum(axis=1)
    if labels is None:
        majority = [None] * stacked.shape[1]
    else:
        right = (predicted == labels[None, :]).sum(axis=0)
        majority = [bool(r * 2 > stacked.shape[0]) if label >= 0 else None for r, label in zip(right.tolist(), labels)]
    return {
        "mean_top_score": mean_top.tolist(),
        "distinct_classes": distinct,
        "majority_right": majority,
        "entropy": np.maximum(entropy, 0.0).tolist(),
    }


def empty(count):
    """per_sample's shape when no model could answer: every statistic null."""
    return {name: [None] * count for name in ("mean_top_score", "distinct_classes", "majority_right", "entropy")}
