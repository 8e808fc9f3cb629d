"""Faithfulness scores of attribution maps: deletion, insertion, MoRF and LeRF curves and their areas.

Deletion and insertion: Petsiuk, Das & Saenko 2018, "RISE: Randomized Input Sampling for
Explanation of Black-box Models", https://arxiv.org/abs/1806.07421 (section 4.1). Region
perturbation MoRF / LeRF: Samek, Binder, Montavon, Lapuschkin & Mueller 2017, "Evaluating the
Visualization of What a Deep Neural Network Has Learned", https://arxiv.org/abs/1509.06321.

A metric cuts the image into segments (single pixels, or `region` x `region` squares), orders them
by the map (summed over each segment; most relevant first, or least first for LeRF), and after
each of `steps` equal fractions of the segments records the target's probability on a copy whose
first segments are filled (deletion, MoRF, LeRF) or, starting from the all-fill image, restored
(insertion). The same curve in a random order is the baseline: one permutation per image, drawn from
the seed and the image's content (so it does not depend on the batch, the request or the method). All copies
of all curves of all samples go through the backend-neutral model.scores in memory-bounded chunks
(one pass), in the model's input space, filled as occlusion fills (perturbation.common.fill_image).
"""

import dataclasses
import hashlib

import numpy as np

from tb_xai_plugin.engine import batching
from tb_xai_plugin.engine.perturbation import common
from tb_xai_plugin.errors import XaiError

FILLS = ("mean", "zero", "blur")
MAX_STEPS = 256
MAX_REGION = 64
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class Metric:
    """How one metric builds its curve: segments, direction, order, and which way is better."""

    name: str
    regions: bool  # segments are region x region squares (else single pixels)
    insert: bool  # start from the all-fill image and restore segments (else fill them)
    most_first: bool  # most relevant segment first (else least relevant first)
    better: str  # "lower" or "higher" area under the curve


METRICS = {
    "deletion": Metric("deletion", regions=False, insert=False, most_first=True, better="lower"),
    "insertion": Metric("insertion", regions=False, insert=True, most_first=True, better="higher"),
    "morf": Metric("morf", regions=True, insert=False, most_first=True, better="lower"),
    "lerf": Metric("lerf", regions=True, insert=False, most_first=False, better="higher"),
}


@dataclasses.dataclass(frozen=True)
class Curve:
    """One curve to compute: a segment rank per sample ([N, S], 0 = perturbed first) and its direction."""

    labels: np.ndarray  # int [H, W] segment of each pixel
    ranks: np.ndarray  # int [N, S]
    insert: bool


def check_params(metrics, fill, steps, region):
    """XaiError unless metrics are known and distinct, fill a known name or float32 number, steps and region in range."""
    names = isinstance(metrics, (list, tuple)) and all(isinstance(m, str) for m in metrics)
    if not names or not metrics or len(set(metrics)) != len(metrics):
        raise XaiError("metrics must be a non-empty list of distinct names from %s" % ", ".join(METRICS))
    for name in metrics:
        if name not in METRICS:
            raise XaiError("unknown metric %r; the metrics are %s" % (name, ", ".join(METRICS)))
    if isinstance(fill, bool) or not (fill in FILLS or (isinstance(fill, (int, float)) and abs(fill) <= FLOAT32_MAX)):
        raise XaiError("fill must be one of %s or a float32 number, not %r" % (", ".join(FILLS), fill))
    for name, value, high in (("steps", steps, MAX_STEPS), ("region", region, MAX_REGION)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= high:
            raise XaiError("%s must be an integer in [1, %d], not %r" % (name, high, value))


def region_labels(height, width, side):
    """int [H, W]: the index of each pixel's side x side square, squares row by row from the top left."""
    rows, cols = np.arange(height) // side, np.arange(width) // side
    return (rows[:, None] * (cols[-1] + 1) + cols[None, :]).astype(np.int64)


def segment_relevance(maps, labels):
    """float64 [N, S]: each segment's summed map value, R_s = sum_{p in s} map[p]."""
    count = int(labels.max()) + 1
    return np.stack([np.bincount(labels.ravel(), weights=m.ravel().astype(np.float64), minlength=count) for m in maps])


def ranks_of(relevance, most_first):
    """int [N, S]: each segment's place in the order (0 first), by relevance, ties in segment order."""
    order = np.argsort(-relevance if most_first else relevance, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(order.shape[1])[None, :], axis=1)
    return ranks


def image_seed(image):
    """An integer naming an image's content: the first 8 bytes of the sha256 of its float32 bytes."""
    return int.from_bytes(hashlib.sha256(np.ascontiguousarray(image, np.float32).tobytes()).digest()[:8], "little")


def random_ranks(x, segments, seed):
    """int [N, S]: per image, the ranks of the random order default_rng([seed, image_seed(image)]).permutation(S)."""
    orders = [np.random.default_rng([seed, image_seed(image)]).permutation(segments) for image in x]
    return np.stack([np.argsort(order) for order in orders])


def fill_of(x, fill):
    """float32 [N, H, W, C]: the fill image of each input (perturbation.common.fill_image, or a constant)."""
    if isinstance(fill, str):
        return np.stack([common.fill_image(image, fill) for image in x]).astype(np.float32)
    return np.full_like(x, np.float32(fill))


def compute_curves(model, x, fills, targets, curves, steps, progress=None, budget_bytes=common.MEMORY_BUDGET_BYTES):
    """[float64 [N, steps + 1] per curve]: p_target(copy) after each step, all copies in bounded chunks."""
    n, points = len(x), steps + 1
    total = len(curves) * n * points
    flat = np.empty(total, np.float64)
    rows_per_chunk = batching.forward_batch_size(model, budget_bytes)
    for chunk in batching.batches(total, rows_per_chunk):
        ids = np.arange(chunk.start, chunk.stop)
        which, sample, step = ids // (n * points), ids // points % n, ids % points
        copies = np.stack([_copy(x, fills, curves[c], s, k, steps) for c, s, k in zip(which, sample, step)])
        flat[chunk] = model.scores(copies, "probability")[np.arange(len(ids)), targets[sample]]
        if progress is not None:
            progress(chunk.stop, total)
    return list(flat.reshape(len(curves), n, points))


def _copy(x, fills, curve, sample, step, steps):
    """float32 [H, W, C]: input `sample` with its first floor(step S / steps) segments filled (or restored)."""
    segments = curve.ranks.shape[1]
    perturbed = (curve.ranks[sample] < step * segments // steps)[curve.labels][..., None]
    if curve.insert:
        return np.where(perturbed, x[sample], fills[sample])
    return np.where(perturbed, fills[sample], x[sample])


def auc(curves):
    """float64 [N]: trapezoid area of each curve over [0, 1], (sum_k c_k - (c_0 + c_K) / 2) / K."""
    curves = np.asarray(curves, np.float64)
    steps = curves.shape[1] - 1
    return (curves.sum(axis=1) - (curves[:, 0] + curves[:, -1]) / 2) / steps


def aopc(curves):
    """float64 [N]: Samek's area over the perturbation curve, c_0 - mean_k c_k over the K + 1 points."""
    curves = np.asarray(curves, np.float64)
    return curves[:, 0] - curves.mean(axis=1)


def score_maps(model, images, targets, maps, *, metrics, fill="mean", steps=16, region=4, seed=0, random=True, progress=None,
               budget_bytes=common.MEMORY_BUDGET_BYTES):  # fmt: skip
    """{"random": {metric: [N, K+1]} ({} unless `random`), "maps": {name: {metric: [N, K+1]}}} of maps {name: [N, H, W]}."""
    check_params(metrics, fill, steps, region)
    x = model.preprocess(images)
    n, height, width = x.shape[:3]
    if region > min(height, width):
        raise XaiError("region %d is larger than the image (%d x %d)" % (region, height, width))
    targets = np.asarray(targets, np.int64)
    for name, m in maps.items():
        if np.shape(m) != (n, height, width):
            raise XaiError("maps of %s have shape %s; the images need [%d, %d, %d]" % (name, list(np.shape(m)), n, height, width))
    labels = {False: region_labels(height, width, 1), True: region_labels(height, width, region)}
    wanted = [METRICS[name] for name in metrics]
    random_keys = sorted({(m.regions, m.insert) for m in wanted}) if random else []  # LeRF and MoRF share one
    curves = [Curve(labels[r], random_ranks(x, int(labels[r].max()) + 1, seed), i) for r, i in random_keys]
    for name in maps:
        for metric in wanted:
            relevance = segment_relevance(maps[name], labels[metric.regions])
            curves.append(Curve(labels[metric.regions], ranks_of(relevance, metric.most_first), metric.insert))
    computed = compute_curves(model, x, fill_of(x, fill), targets, curves, steps, progress, budget_bytes)
    if not all(np.isfinite(c).all() for c in computed):
        raise XaiError("the model's probabilities are not finite on the perturbed images (fill %r); try another fill" % (fill,))
    values = iter(computed)
    shuffled = dict(zip(random_keys, [next(values) for _ in random_keys]))
    out = {"random": {m.name: shuffled[(m.regions, m.insert)] for m in wanted} if random else {}, "maps": {}}
    for name in maps:
        out["maps"][name] = {metric.name: next(values) for metric in wanted}
    return out
