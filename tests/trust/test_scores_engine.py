"""Faithfulness curves (engine/faithfulness.py) against the papers' definitions, on a logged linear softmax model.

The model is 16x16x1 -> Flatten -> Dense(2, softmax) with logit_0 = w . x and logit_1 = 0, so the
exact contribution of pixel p to logit_0 against the fill f is w_p (x_p - f_p): removing pixels in
that order lowers p_0 fastest, and every curve can be recomputed by a slow loop that follows the text.
"""

import hashlib
import os

import numpy as np
import pytest
import tensorflow as tf

from tb_xai_plugin import files, metadata, summary
from tb_xai_plugin.engine import backends, faithfulness
from tb_xai_plugin.errors import XaiError
from tests.engine.float32_error import dense_logit_error, probability_gap

SIDE = 16
STEPS = 8
REGION = 4


@pytest.fixture(scope="module")
def linear(tmp_path_factory):
    """(loaded model, w [16, 16], images [4, 16, 16, 1]): the logged linear model, loaded by its backend."""
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.5, (SIDE, SIDE)).astype(np.float32)
    inputs = tf.keras.Input((SIDE, SIDE, 1))
    outputs = tf.keras.layers.Dense(2, activation="softmax", name="dense")(tf.keras.layers.Flatten()(inputs))
    keras_model = tf.keras.Model(inputs, outputs)
    keras_model.get_layer("dense").set_weights([np.stack([w.ravel(), np.zeros(w.size, np.float32)], 1), np.zeros(2, np.float32)])
    run_dir = os.path.join(str(tmp_path_factory.mktemp("linear")), "run")
    with summary.create_file_writer(run_dir).as_default():
        assert summary.checkpoint(keras_model, step=0, class_names=["a", "b"])
    manifest = files.checkpoint_manifests(run_dir)[-1]
    path = os.path.join(run_dir, *metadata.PLUGIN_DIR, metadata.CHECKPOINTS_DIR, manifest["file"])
    images = rng.uniform(0, 1, (4, SIDE, SIDE, 1)).astype(np.float32)
    return backends.load_checkpoint(path, manifest), w, images


def tolerance(w, images):
    """|dp| two float32 runs of the model may differ by on these images (and their fills, within [0, 1] too)."""
    return probability_gap(dense_logit_error(w, np.maximum(images, 1.0)))


def exact_maps(w, images, fill):
    """[N, H, W]: each pixel's contribution to logit_0 against the fill, w_p (x_p - f_p)."""
    return w[None] * (images - fill)[..., 0]


def reference_curve(model, image, fill, segment_of, order, steps, insert, target=0):
    """The curve as the papers describe it, one copy at a time: after floor(k S / steps) segments of `order`, p_target."""
    out = []
    for k in range(steps + 1):
        chosen = set(order[: k * len(order) // steps])
        copy = fill.copy() if insert else image.copy()
        for r in range(image.shape[0]):
            for c in range(image.shape[1]):
                if segment_of[r, c] in chosen:
                    copy[r, c] = image[r, c] if insert else fill[r, c]
        out.append(float(model.probabilities(copy[None])[0, target]))
    return np.array(out)


def region_of(side, region):
    """int [side, side]: the index of each pixel's region x region square, row by row (written out)."""
    per_row = -(-side // region)
    return np.array([[(r // region) * per_row + c // region for c in range(side)] for r in range(side)])


def reference_order(relevance, most_first):
    """Segment ids by relevance, most (or least) first, ties by id: sorted() on (key, id) pairs."""
    return [s for _, s in sorted((-v if most_first else v, s) for s, v in enumerate(relevance))]


def test_every_curve_follows_its_definition(linear):
    model, w, images = linear
    fill = np.broadcast_to(images.mean(axis=(1, 2), keepdims=True), images.shape)
    maps = exact_maps(w, images, fill)
    out = faithfulness.score_maps(model, images, [0] * 4, {"m": maps}, metrics=list(faithfulness.METRICS), fill="mean",
                                  steps=STEPS, region=REGION, seed=3)  # fmt: skip
    pixels, regions = region_of(SIDE, 1), region_of(SIDE, REGION)
    for name, metric in faithfulness.METRICS.items():
        segment_of = regions if metric.regions else pixels
        count = segment_of.max() + 1
        for n in range(len(images)):
            relevance = [maps[n][segment_of == s].sum() for s in range(count)]
            order = reference_order(relevance, metric.most_first)
            expected = reference_curve(model, images[n], fill[n], segment_of, order, STEPS, metric.insert)
            np.testing.assert_allclose(out["maps"]["m"][name][n], expected, rtol=0, atol=tolerance(w, images), err_msg=name)
            key = int.from_bytes(hashlib.sha256(model.preprocess(images[n : n + 1])[0].tobytes()).digest()[:8], "little")
            shuffled = list(np.random.default_rng([3, key]).permutation(count))
            expected = reference_curve(model, images[n], fill[n], segment_of, shuffled, STEPS, metric.insert)
            np.testing.assert_allclose(out["random"][name][n], expected, rtol=0, atol=tolerance(w, images), err_msg=name)


def test_exact_contributions_beat_the_random_order_at_every_step(linear):
    model, w, images = linear
    fill = np.zeros_like(images)
    out = faithfulness.score_maps(model, images, [0] * 4, {"m": exact_maps(w, images, fill)}, metrics=list(faithfulness.METRICS),
                                  fill="zero", steps=STEPS, region=REGION, seed=0)  # fmt: skip
    tol = tolerance(w, images)
    for name, metric in faithfulness.METRICS.items():
        curves, random = out["maps"]["m"][name], out["random"][name]
        lower = metric.better == "lower"
        assert np.all((curves <= random + tol) if lower else (curves >= random - tol)), name
        areas, random_areas = faithfulness.auc(curves), faithfulness.auc(random)
        assert np.all(areas < random_areas) if lower else np.all(areas > random_areas), name


def test_a_sample_scores_the_same_alone_and_in_a_batch(linear):
    model, w, images = linear
    maps = {"m": exact_maps(w, images, np.zeros_like(images))}
    kwargs = dict(metrics=["deletion", "lerf"], fill="blur", steps=4, region=REGION, seed=1)
    together = faithfulness.score_maps(model, images, [1] * 4, maps, **kwargs)
    alone = faithfulness.score_maps(model, images[2:3], [1], {"m": maps["m"][2:3]}, budget_bytes=1, **kwargs)
    for name in kwargs["metrics"]:
        np.testing.assert_allclose(alone["maps"]["m"][name][0], together["maps"]["m"][name][2], rtol=0, atol=tolerance(w, images))
        np.testing.assert_allclose(alone["random"][name][0], together["random"][name][2], rtol=0, atol=tolerance(w, images))


def test_deletion_ends_at_the_fill_and_insertion_starts_there(linear):
    model, w, images = linear
    out = faithfulness.score_maps(model, images, [0] * 4, {"m": exact_maps(w, images, 0.25)}, metrics=["deletion", "insertion"],
                                  fill=0.25, steps=2, region=1, seed=0)  # fmt: skip
    start, end = model.probabilities(images)[:, 0], model.probabilities(np.full_like(images, 0.25))[:, 0]
    tol = tolerance(w, images)
    np.testing.assert_allclose(out["maps"]["m"]["deletion"][:, [0, -1]], np.stack([start, end], 1), rtol=0, atol=tol)
    np.testing.assert_allclose(out["maps"]["m"]["insertion"][:, [0, -1]], np.stack([end, start], 1), rtol=0, atol=tol)


def test_areas_by_hand():
    curves = np.array([[1.0, 0.5, 0.0], [0.2, 0.2, 0.8]])
    np.testing.assert_allclose(faithfulness.auc(curves), [(0.75 + 0.25) / 2, (0.2 + 0.5) / 2])
    np.testing.assert_allclose(faithfulness.aopc(curves), [1.0 - 0.5, 0.2 - 0.4])


@pytest.mark.parametrize(
    "metrics, fill, steps, region",
    [([], "mean", 4, 2), (["deletion", "deletion"], "mean", 4, 2), (["roar"], "mean", 4, 2), ([["deletion"]], "mean", 4, 2),
     (["morf"], "purple", 4, 2), (["morf"], True, 4, 2), (["morf"], float("nan"), 4, 2), (["morf"], "mean", 0, 2),
     (["morf"], "mean", 257, 2), (["morf"], "mean", 4.0, 2), (["morf"], "mean", 4, 0), (["morf"], "mean", 4, 17),
     (["morf"], 1e39, 4, 2), (["morf"], [0.0], 4, 2)],
)  # fmt: skip
def test_bad_parameters_are_refused_before_any_run(linear, metrics, fill, steps, region):
    model, w, images = linear
    with pytest.raises(XaiError):
        faithfulness.score_maps(model, images, [0] * 4, {"m": images[..., 0]}, metrics=metrics, fill=fill, steps=steps, region=region)


def test_maps_of_the_wrong_shape_are_refused(linear):
    model, _, images = linear
    with pytest.raises(XaiError, match="shape"):
        faithfulness.score_maps(model, images, [0] * 4, {"m": images[:2, ..., 0]}, metrics=["deletion"])


def test_a_fill_that_overflows_the_model_is_refused_not_answered_with_nan(linear):
    model, _, images = linear
    with pytest.raises(XaiError, match="not finite"):
        faithfulness.score_maps(model, images, [0] * 4, {"m": images[..., 0]}, metrics=["deletion"], fill=3e38, steps=2)
