// The suggestion panel's logic: points, jitter, filters, hit-testing and histogram bins. No DOM.
import { quadtree, type Quadtree } from "d3-quadtree";
import type { Filters } from "./state";
import type { SuggestionsResponse } from "./types";

/** A deterministic offset in [-amplitude, amplitude] for sample i (integer hash, no state). */
export function jitter(i: number, amplitude: number): number {
  let h = (i + 1) * 0x9e3779b1;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return ((h >>> 0) / 0xffffffff) * 2 * amplitude - amplitude;
}

export type Verdict = "right" | "wrong" | "unknown";

/** Whether most models got sample i right, from per_sample.majority_right (unknown without labels). */
export function verdict(stats: SuggestionsResponse, i: number): Verdict {
  const m = stats.per_sample.majority_right;
  if (!m || m[i] === null || m[i] === undefined) return "unknown";
  return m[i] ? "right" : "wrong";
}

/** Models whose statistics arrived. */
const okModels = (stats: SuggestionsResponse) => stats.per_model.filter((m) => m.ok && m.predicted);

/** Indices of the samples that pass every active filter, in index order. */
export function applyFilters(stats: SuggestionsResponse, f: Filters): number[] {
  const labels = stats.labels;
  const models = okModels(stats);
  let out: number[] = [];
  for (let i = 0; i < stats.count; i++) {
    if ((f.misclassified || f.topMistakes) && verdict(stats, i) !== "wrong") continue;
    if (f.trueClass !== null && (!labels || labels[i] !== f.trueClass)) continue;
    if (f.predictedClass !== null && !models.some((m) => m.predicted![i] === f.predictedClass)) continue;
    out.push(i);
  }
  if (f.topMistakes) {
    const score = stats.per_sample.mean_top_score;
    out = out
      .sort((a, b) => score[b] - score[a] || a - b)
      .slice(0, f.topMistakes)
      .sort((a, b) => a - b);
  }
  return out;
}

export interface Point {
  index: number;
  x: number; // screen pixels
  y: number;
}

/** A quadtree over the points' screen positions. */
export function buildQuadtree(points: Point[]): Quadtree<Point> {
  return quadtree<Point>()
    .x((p) => p.x)
    .y((p) => p.y)
    .addAll(points);
}

/** The point nearest (x, y) within `radius` pixels, or undefined. */
export function hitTest(tree: Quadtree<Point>, x: number, y: number, radius: number): Point | undefined {
  return tree.find(x, y, radius);
}

/** Indices of the points inside the rectangle [x0, x1] x [y0, y1], found through the quadtree. */
export function pointsInRect(tree: Quadtree<Point>, x0: number, y0: number, x1: number, y1: number): number[] {
  const found: number[] = [];
  tree.visit((node, nx0, ny0, nx1, ny1) => {
    if (!node.length) {
      let leaf: typeof node | undefined = node;
      while (leaf && !leaf.length) {
        const p = (leaf as { data: Point }).data;
        if (p.x >= x0 && p.x <= x1 && p.y >= y0 && p.y <= y1) found.push(p.index);
        leaf = (leaf as { next?: typeof node }).next;
      }
    }
    return nx0 > x1 || ny0 > y1 || nx1 < x0 || ny1 < y0;
  });
  return found.sort((a, b) => a - b);
}

export interface Bin {
  x0: number;
  x1: number;
  indices: number[];
}

/** `count` equal bins over [lo, hi] of values[i] for i in `indices` (the last bin closed on the right). */
export function histogram(values: ArrayLike<number>, indices: number[], count: number, lo: number, hi: number): Bin[] {
  const width = hi > lo ? (hi - lo) / count : 1;
  const bins: Bin[] = Array.from({ length: count }, (_, k) => ({ x0: lo + k * width, x1: lo + (k + 1) * width, indices: [] }));
  for (const i of indices) {
    const v = values[i];
    if (!Number.isFinite(v)) continue;
    const k = Math.min(count - 1, Math.max(0, Math.floor((v - lo) / width)));
    bins[k].indices.push(i);
  }
  return bins;
}

/** [min, max] of the finite values at `indices` ([0, 1] when there are none). */
export function extent(values: ArrayLike<number>, indices: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const i of indices) {
    const v = values[i];
    if (Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  if (lo > hi) return [0, 1];
  return lo === hi ? [lo - 0.5, hi + 0.5] : [lo, hi];
}

/** 1 - p(true label) per sample, from one model's statistics (NaN where unknown). */
export function lossOfTruth(stats: SuggestionsResponse, model = 0): number[] {
  const p = okModels(stats)[model]?.p_true;
  return Array.from({ length: stats.count }, (_, i) => (p && p[i] !== null && p[i] !== undefined ? 1 - p[i] : NaN));
}

/** The selection as CSV rows: index, label, then each model's predicted class and top score. */
export function selectionTable(
  stats: SuggestionsResponse,
  indices: number[],
  className: (c: number) => string,
): { header: string[]; rows: (string | number)[][] } {
  const models = okModels(stats);
  const header = ["index", "label", "mean_top_score", "distinct_classes"];
  for (const m of models) header.push(`${m.run}@${m.step} predicted`, `${m.run}@${m.step} score`);
  const rows = indices.map((i) => {
    const label = stats.labels ? stats.labels[i] : null;
    const row: (string | number)[] = [
      i,
      label === null || label < 0 ? "" : className(label),
      round(stats.per_sample.mean_top_score[i]),
      stats.per_sample.distinct_classes[i],
    ];
    for (const m of models) row.push(className(m.predicted![i]), round(m.top_score ? m.top_score[i] : NaN));
    return row;
  });
  return { header, rows };
}

/** x to 4 decimals, as a number ('' for NaN). */
const round = (x: number): number | string => (Number.isFinite(x) ? Math.round(x * 1e4) / 1e4 : "");

/** The keyboard's next point from `from` in direction (dx, dy): the nearest point ahead, counting sideways
 * distance twice (score = along + 2 |across|); with no `from`, the point nearest (cx, cy). */
export function nextPoint(points: Point[], from: Point | null, dx: number, dy: number, cx = 0, cy = 0): Point | null {
  if (!from) {
    let best: Point | null = null;
    for (const p of points) if (!best || (p.x - cx) ** 2 + (p.y - cy) ** 2 < (best.x - cx) ** 2 + (best.y - cy) ** 2) best = p;
    return best;
  }
  let best: Point | null = null;
  let bestScore = Infinity;
  for (const p of points) {
    const along = (p.x - from.x) * dx + (p.y - from.y) * dy;
    const across = Math.abs((p.x - from.x) * dy - (p.y - from.y) * dx);
    if (p.index === from.index || along <= 0) continue;
    const score = along + 2 * across;
    if (score < bestScore) [best, bestScore] = [p, score];
  }
  return best ?? from;
}

/** A keyboard rectangle [x0, y0, x1, y1]: its moving corner (x1, y1) shifted by (dx, dy), kept inside `bounds`. */
export function growRect(rect: [number, number, number, number], dx: number, dy: number, bounds: [number, number, number, number]): [number, number, number, number] {
  const [x0, y0, x1, y1] = rect;
  const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
  return [x0, y0, clamp(x1 + dx, bounds[0], bounds[2]), clamp(y1 + dy, bounds[1], bounds[3])];
}

/** [min, max] corners of a rectangle given by any two opposite corners. */
export const normalRect = ([x0, y0, x1, y1]: [number, number, number, number]): [number, number, number, number] => [
  Math.min(x0, x1),
  Math.min(y0, y1),
  Math.max(x0, x1),
  Math.max(y0, y1),
];

/** The suggestions request that counts: starting a new one hands back the one it replaces, to cancel on the server. */
export class LatestRequest {
  private current: string | null = null;

  /** Make `id` the request that counts; the replaced request's id, or null. */
  start(id: string): string | null {
    const stale = this.current;
    this.current = id;
    return stale;
  }

  /** Forget the request that counts (the selection changed before it was sent); its id, or null. */
  drop(): string | null {
    const stale = this.current;
    this.current = null;
    return stale;
  }

  /** Whether `id` is still the request that counts. */
  isCurrent(id: string): boolean {
    return this.current === id;
  }
}

/** "12,800 of 60,000 rows (21%)": a suggestions request's progress (GET progress counts rows, every model's). */
export function rowsText(done: number, total: number): string {
  if (total <= 0) return "starting…";
  const percent = Math.floor((100 * Math.min(done, total)) / total);
  return `${done.toLocaleString("en-US")} of ${total.toLocaleString("en-US")} rows (${percent}%)`;
}
