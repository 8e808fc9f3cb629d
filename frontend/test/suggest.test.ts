import { test } from "node:test";
import assert from "node:assert/strict";
import { DEFAULT_FILTERS } from "../src/state";
import {
  applyFilters,
  buildQuadtree,
  extent,
  histogram,
  growRect,
  hitTest,
  jitter,
  lossOfTruth,
  nextPoint,
  normalRect,
  pointsInRect,
  selectionTable,
  verdict,
  type Point,
} from "../src/suggest";
import type { SuggestionsResponse } from "../src/types";

// Five samples, two models; labels 0..; model a right on 0,1,3; model b right on 0,3.
const stats: SuggestionsResponse = {
  count: 5,
  labels: [0, 1, 2, 1, 0],
  per_model: [
    { run: "a", step: 1, ok: true, predicted: [0, 1, 1, 1, 2], top_score: [0.9, 0.6, 0.8, 0.7, 0.95], p_true: [0.9, 0.6, 0.1, 0.7, 0.01] },
    { run: "b", step: 1, ok: true, predicted: [0, 2, 1, 1, 2], top_score: [0.8, 0.5, 0.7, 0.9, 0.99], p_true: [0.8, 0.2, 0.2, 0.9, 0.0] },
    { run: "c", step: 1, ok: false, error: "broken" },
  ],
  per_sample: {
    mean_top_score: [0.85, 0.55, 0.75, 0.8, 0.97],
    distinct_classes: [1, 2, 1, 1, 1],
    majority_right: [true, false, false, true, false],
  },
  activation: null,
};

test("jitter is deterministic, bounded and spread", () => {
  const xs = Array.from({ length: 1000 }, (_, i) => jitter(i, 0.3));
  assert.deepEqual(xs, Array.from({ length: 1000 }, (_, i) => jitter(i, 0.3)));
  assert.ok(xs.every((x) => x >= -0.3 && x <= 0.3));
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
  assert.ok(Math.min(...xs) < -0.25 && Math.max(...xs) > 0.25);
  assert.ok(new Set(xs).size > 990);
});

test("filters: misclassified, true class, predicted class, k most confident mistakes", () => {
  assert.deepEqual(applyFilters(stats, DEFAULT_FILTERS), [0, 1, 2, 3, 4]);
  assert.deepEqual(applyFilters(stats, { ...DEFAULT_FILTERS, misclassified: true }), [1, 2, 4]);
  assert.deepEqual(applyFilters(stats, { ...DEFAULT_FILTERS, trueClass: 1 }), [1, 3]);
  assert.deepEqual(applyFilters(stats, { ...DEFAULT_FILTERS, predictedClass: 2 }), [1, 4]);
  assert.deepEqual(applyFilters(stats, { ...DEFAULT_FILTERS, topMistakes: 2 }), [2, 4]);
  assert.deepEqual(applyFilters(stats, { ...DEFAULT_FILTERS, misclassified: true, trueClass: 1 }), [1]);
  assert.deepEqual(applyFilters({ ...stats, labels: null }, { ...DEFAULT_FILTERS, trueClass: 1 }), []);
});

test("verdict reads majority_right and says unknown without labels", () => {
  assert.equal(verdict(stats, 0), "right");
  assert.equal(verdict(stats, 1), "wrong");
  assert.equal(verdict({ ...stats, per_sample: { ...stats.per_sample, majority_right: null } }, 0), "unknown");
});

test("quadtree hit-testing finds the nearest point within the radius only", () => {
  const points: Point[] = [
    { index: 0, x: 10, y: 10 },
    { index: 1, x: 50, y: 50 },
    { index: 2, x: 53, y: 50 },
  ];
  const tree = buildQuadtree(points);
  assert.equal(hitTest(tree, 12, 11, 5)?.index, 0);
  assert.equal(hitTest(tree, 52.5, 50, 5)?.index, 2);
  assert.equal(hitTest(tree, 30, 30, 5), undefined);
});

test("pointsInRect agrees with a linear scan on many random points", () => {
  const points: Point[] = Array.from({ length: 5000 }, (_, i) => ({ index: i, x: (jitter(i, 1) + 1) * 300, y: (jitter(i + 7919, 1) + 1) * 200 }));
  // duplicates exercise the quadtree's coincident-point chains
  points.push({ index: 5000, x: points[10].x, y: points[10].y });
  const tree = buildQuadtree(points);
  const [x0, y0, x1, y1] = [100, 50, 350, 260];
  const expected = points.filter((p) => p.x >= x0 && p.x <= x1 && p.y >= y0 && p.y <= y1).map((p) => p.index);
  assert.deepEqual(pointsInRect(tree, x0, y0, x1, y1), expected.sort((a, b) => a - b));
  assert.ok(expected.length > 500);
});

test("histogram bins cover the domain, the last bin closed, NaN skipped", () => {
  const values = [0, 0.1, 0.5, 0.99, 1, NaN];
  const bins = histogram(values, [0, 1, 2, 3, 4, 5], 4, 0, 1);
  assert.deepEqual(bins.map((b) => b.indices), [[0, 1], [], [2], [3, 4]]);
  assert.equal(bins[3].x1, 1);
  assert.deepEqual(extent(values, [0, 1, 2, 3, 4, 5]), [0, 1]);
  assert.deepEqual(extent([2, 2], [0, 1]), [1.5, 2.5]);
});

test("1 - p(true) per sample comes from the first usable model", () => {
  assert.deepEqual(lossOfTruth(stats).map((x) => Math.round(x * 100) / 100), [0.1, 0.4, 0.9, 0.3, 0.99]);
  assert.deepEqual(lossOfTruth(stats, 1).map((x) => Math.round(x * 100) / 100), [0.2, 0.8, 0.8, 0.1, 1]);
});

test("selection table names classes and lists each usable model", () => {
  const t = selectionTable(stats, [1, 4], (c) => ["zero", "one", "two"][c]);
  assert.deepEqual(t.header, ["index", "label", "mean_top_score", "distinct_classes", "a@1 predicted", "a@1 score", "b@1 predicted", "b@1 score"]);
  assert.deepEqual(t.rows, [
    [1, "one", 0.55, 2, "one", 0.6, "two", 0.5],
    [4, "zero", 0.97, 1, "two", 0.95, "two", 0.99],
  ]);
});

test("the keyboard's next point is the nearest one ahead, sideways distance counting twice", () => {
  const pts = [
    { index: 0, x: 10, y: 10 },
    { index: 1, x: 20, y: 10 },
    { index: 2, x: 14, y: 30 },
    { index: 3, x: 30, y: 11 },
  ];
  assert.equal(nextPoint(pts, null, 1, 0, 12, 12)!.index, 0); // no cursor yet: the point nearest the centre
  assert.equal(nextPoint(pts, pts[0], 1, 0)!.index, 1);
  assert.equal(nextPoint(pts, pts[1], 1, 0)!.index, 3);
  assert.equal(nextPoint(pts, pts[3], 1, 0)!.index, 3); // nothing further right: stays
  assert.equal(nextPoint(pts, pts[0], 0, 1)!.index, 2);
  assert.equal(nextPoint([], null, 1, 0), null);
});

test("a keyboard rectangle grows from its anchor and stays inside the plot", () => {
  const bounds: [number, number, number, number] = [0, 0, 100, 50];
  assert.deepEqual(growRect([40, 20, 40, 20], 10, 0, bounds), [40, 20, 50, 20]);
  assert.deepEqual(growRect([40, 20, 95, 20], 10, -30, bounds), [40, 20, 100, 0]);
  assert.deepEqual(normalRect([40, 20, 10, 5]), [10, 5, 40, 20]);
});
