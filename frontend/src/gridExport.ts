// What the grid's export buttons write: the shown maps as one .npz, the predictions as CSV.
import { npyBytes, safeName, toCsv, zipStored } from "./export";
import type { MapResult, PredResult } from "./model";
import { METRICS } from "./trust";
import type { ScoreResult } from "./trustModel";
import type { ModelRef } from "./types";
import type { Column } from "./views/grid";

/** File-safe name of a column: '<run>_step<step>_<method>'. */
export const columnName = (c: Column): string => safeName(`${c.model.run}_step${c.model.step}_${c.method}`);

/** An .npz with 'indices' and one float32 [rows, H, W] array per column whose maps all exist with one shape, and
 * per column and metric its scores where every row has them: '<column>_<metric>_auc' and '_random_auc' [rows],
 * '_curve' and '_random_curve' [rows, steps + 1]. */
export function mapsNpz(
  columns: Column[],
  rows: number[],
  lookup: (c: Column, index: number) => MapResult | undefined,
  scores: (c: Column, index: number) => ScoreResult | undefined = () => undefined,
): { bytes: Uint8Array; skipped: string[] } {
  const files: [string, Uint8Array][] = [["indices.npy", npyBytes(Float32Array.from(rows), [rows.length])]];
  const skipped: string[] = [];
  for (const c of columns) {
    const maps = rows.map((i) => lookup(c, i));
    const ready = maps.filter((m): m is Exclude<MapResult, { error: string }> => !!m && !("error" in m));
    const complete = ready.length === rows.length && ready.every((m) => m.height === ready[0].height && m.width === ready[0].width);
    if (!complete || !rows.length) {
      skipped.push(columnName(c));
      continue;
    }
    const { height, width } = ready[0];
    const stack = new Float32Array(rows.length * height * width);
    ready.forEach((m, k) => stack.set(m.values, k * height * width));
    files.push([`${columnName(c)}.npy`, npyBytes(stack, [rows.length, height, width])]);
  }
  for (const c of columns) files.push(...scoreArrays(columnName(c), rows.map((i) => scores(c, i))));
  return { bytes: zipStored(files), skipped };
}

export const PREDICTIONS_HEADER = ["index", "label", "run", "step", "rank", "class", "class_name", "score"];

/** CSV of every model's top-k on every row: one line per (sample, model, rank); failed ones left out. */
export function predictionsCsv(rows: number[], models: ModelRef[], lookup: (m: ModelRef, index: number) => PredResult | undefined, className: (c: number) => string): string {
  const lines: (string | number)[][] = [];
  for (const index of rows)
    for (const m of models) {
      const p = lookup(m, index);
      if (!p || "error" in p) continue;
      p.classes.forEach((c, k) => lines.push([index, p.label ?? "", m.run, m.step, k + 1, c, className(c), p.scores[k]]));
    }
  return toCsv(PREDICTIONS_HEADER, lines);
}

/** The .npy files of one column's scores, per metric that every row has (curves only when all have one length). */
function scoreArrays(name: string, results: (ScoreResult | undefined)[]): [string, Uint8Array][] {
  const files: [string, Uint8Array][] = [];
  const n = results.length;
  for (const metric of METRICS) {
    const got = results.flatMap((r) => (r && !("error" in r) && r[metric] ? [r[metric]!] : []));
    if (!n || got.length !== n) continue;
    files.push([`${name}_${metric}_auc.npy`, npyBytes(Float32Array.from(got, (g) => g.auc), [n])]);
    files.push([`${name}_${metric}_random_auc.npy`, npyBytes(Float32Array.from(got, (g) => g.random), [n])]);
    for (const [key, curve] of [["curve", (g: (typeof got)[number]) => g.curve], ["random_curve", (g: (typeof got)[number]) => g.randomCurve]] as const) {
      const curves = got.map(curve);
      const length = curves[0]?.length ?? 0;
      if (length && curves.every((x) => x && x.length === length))
        files.push([`${name}_${metric}_${key}.npy`, npyBytes(Float32Array.from(curves.flatMap((x) => x!)), [n, length])]);
    }
  }
  return files;
}

export const SCORES_HEADER = ["index", "run", "step", "method", "metric", "better", "auc", "random_auc"];

/** CSV of every shown map's scores: one line per (sample, column, metric); maps without scores left out. */
export function scoresCsv(columns: Column[], rows: number[], lookup: (c: Column, index: number) => ScoreResult | undefined): string {
  const lines: (string | number)[][] = [];
  for (const index of rows)
    for (const c of columns) {
      const r = lookup(c, index);
      if (!r || "error" in r) continue;
      for (const metric of METRICS) if (r[metric]) lines.push([index, c.model.run, c.model.step, c.method, metric, r[metric]!.better, r[metric]!.auc, r[metric]!.random]);
    }
  return toCsv(SCORES_HEADER, lines);
}
