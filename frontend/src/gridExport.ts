// What the grid's export buttons write: the shown maps as one .npz, the predictions as CSV.
import { npyBytes, safeName, toCsv, zipStored } from "./export";
import type { MapResult, PredResult } from "./model";
import type { ModelRef } from "./types";
import type { Column } from "./views/grid";

/** File-safe name of a column: '<run>_step<step>_<method>'. */
export const columnName = (c: Column): string => safeName(`${c.model.run}_step${c.model.step}_${c.method}`);

/** An .npz with 'indices' and one float32 [rows, H, W] array per column whose maps all exist with one shape. */
export function mapsNpz(columns: Column[], rows: number[], lookup: (c: Column, index: number) => MapResult | undefined): { bytes: Uint8Array; skipped: string[] } {
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
