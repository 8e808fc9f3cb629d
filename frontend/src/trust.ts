// Which map to believe: faithfulness scores read from the server's answers, the ranking of methods,
// the sanity badge's sentence and the agreement matrices' colours. No DOM.
import { paletteColor, parseRgb } from "./heatmap";
import type { FirstLastCell, Metric, MetricScores, SanityCell, ScoreCell } from "./types";

export const METRICS: Metric[] = ["deletion", "insertion", "morf", "lerf"];

export const METRIC_LABELS: Record<Metric, string> = {
  deletion: "deletion",
  insertion: "insertion",
  morf: "MoRF",
  lerf: "LeRF",
};

/** What each metric's area measures, for titles and the docs. */
export const METRIC_HELP: Record<Metric, string> = {
  deletion: "area under p(target) as the most relevant pixels are removed first (Petsiuk et al., 2018)",
  insertion: "area under p(target) as the most relevant pixels are added first to the filled image (Petsiuk et al., 2018)",
  morf: "area under p(target) as the most relevant regions are replaced first (Samek et al., 2017)",
  lerf: "area under p(target) as the least relevant regions are replaced first (Samek et al., 2017)",
};

/** Which way is better when an answer does not say: removing the evidence first should make p fall fast. */
export const DEFAULT_BETTER: Record<Metric, "lower" | "higher"> = { deletion: "lower", insertion: "higher", morf: "lower", lerf: "higher" };

export const FILLS = ["mean", "zero", "blur"] as const;
export type Fill = (typeof FILLS)[number];

export const FILL_LABELS: Record<Fill, string> = { mean: "image mean", zero: "zero", blur: "blurred image" };

/** The score settings the tab asks with (steps and region as the server's defaults). */
export interface ScoreOptions {
  fill: Fill;
  steps: number;
  region: number;
}

/** One map's score on one metric. */
export interface SampleScore {
  auc: number;
  random: number;
  better: "lower" | "higher";
  curve: number[] | null;
  randomCurve: number[] | null;
}

export type SampleScores = Partial<Record<Metric, SampleScore>>;

const finite = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const numbers = (v: unknown): number[] | null => (Array.isArray(v) && v.every(finite) ? (v as number[]) : null);

/** The k-th sample's scores of one answered cell, per metric; metrics whose numbers are missing are left out. */
export function sampleScores(cell: ScoreCell, k: number): SampleScores {
  const out: SampleScores = {};
  for (const metric of METRICS) {
    const m = cell.scores?.[metric] as MetricScores | undefined;
    if (!m || !finite(m.auc?.[k]) || !finite(m.random_auc?.[k])) continue;
    out[metric] = {
      auc: m.auc[k],
      random: m.random_auc[k],
      better: m.better === "lower" || m.better === "higher" ? m.better : DEFAULT_BETTER[metric],
      curve: numbers(m.curves?.[k]),
      randomCurve: numbers(m.random_curves?.[k]),
    };
  }
  return out;
}

/** Whether the map's order beats a random order: a smaller area when lower is better, a larger one otherwise. */
export const beatsRandom = (s: SampleScore): boolean => (s.better === "lower" ? s.auc < s.random : s.auc > s.random);

/** Three decimals, the precision the areas are worth on a 16-step curve; "–" for a missing value. */
export const fmt = (v: number | null | undefined): string => (finite(v) ? v.toFixed(3) : "–");

/** The line under a map: "deletion 0.120 · random 0.350 · lower is better". */
export const scoreText = (metric: Metric, s: SampleScore): string =>
  `${METRIC_LABELS[metric]} ${fmt(s.auc)} · random ${fmt(s.random)} · ${s.better} is better`;

/** The same for a screen reader, with the verdict in words. */
export const scoreSentence = (metric: Metric, s: SampleScore): string =>
  `${METRIC_LABELS[metric]} area ${fmt(s.auc)}, random order ${fmt(s.random)}; ${s.better} is better, so this map is ${beatsRandom(s) ? "better" : "not better"} than random`;

/** One scored map: which method, model and sample it belongs to. */
export interface ScoredMap {
  method: string;
  run: string;
  step: number;
  index: number;
  scores: SampleScores;
}

export const RANDOM_ROW = "(random order)";

export interface RankRow {
  method: string; // a method id, or RANDOM_ROW for the random-order baseline
  means: Partial<Record<Metric, number>>;
  count: number; // maps averaged
  rank: number | null; // on the chosen metric, 1 = best; null without a score there
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Mean area per metric of each method over its maps (and the random order's over the distinct model x sample
 * pairs), ranked on `metric` best first; ties share a rank (1, 2, 2, 4); rows without that metric come last. */
export function rankMethods(maps: ScoredMap[], metric: Metric, order: string[]): RankRow[] {
  const rows: RankRow[] = [];
  for (const method of order) {
    const mine = maps.filter((m) => m.method === method);
    if (!mine.length) continue;
    const means: RankRow["means"] = {};
    for (const x of METRICS) {
      const values = mine.flatMap((m) => (m.scores[x] ? [m.scores[x]!.auc] : []));
      if (values.length) means[x] = mean(values);
    }
    rows.push({ method, means, count: mine.length, rank: null });
  }
  const pairs = new Map<string, SampleScores>();
  for (const m of maps) pairs.set(JSON.stringify([m.run, m.step, m.index]), { ...pairs.get(JSON.stringify([m.run, m.step, m.index])), ...m.scores });
  if (pairs.size) {
    const means: RankRow["means"] = {};
    for (const x of METRICS) {
      const values = [...pairs.values()].flatMap((s) => (s[x] ? [s[x]!.random] : []));
      if (values.length) means[x] = mean(values);
    }
    rows.push({ method: RANDOM_ROW, means, count: pairs.size, rank: null });
  }
  const better = maps.find((m) => m.scores[metric])?.scores[metric]?.better ?? DEFAULT_BETTER[metric];
  const sign = better === "lower" ? 1 : -1;
  const scored = rows.filter((r) => r.means[metric] !== undefined).sort((a, b) => sign * (a.means[metric]! - b.means[metric]!));
  scored.forEach((r, k) => (r.rank = k > 0 && scored[k - 1].means[metric] === r.means[metric] ? scored[k - 1].rank : k + 1));
  return [...scored, ...rows.filter((r) => r.rank === null)];
}

/** An SVG path of a curve over [0, 1] x [0, 1] drawn into width x height (y up), values clamped to [0, 1]. */
export function curvePath(values: number[], width: number, height: number): string {
  if (values.length < 2) return "";
  return values
    .map((v, k) => {
      const x = (k / (values.length - 1)) * width;
      const y = (1 - Math.min(1, Math.max(0, v))) * height;
      return `${k ? "L" : "M"}${+x.toFixed(2)},${+y.toFixed(2)}`;
    })
    .join("");
}

/** The sanity check's threshold when the answer names none: the mean correlation once the top layers are randomized
 * (the first stage) at or above which a method is flagged. */
export const DEFAULT_SANITY_THRESHOLD = 0.5;

/** Why the badge is there, in the words the tab shows beside it. */
export const SANITY_EXPLANATION =
  "A flagged method barely depends on the weights here: after the model's top layers were randomized, its maps still " +
  "correlate with the trained model's. A map that survives randomizing them cannot show what the model learned " +
  "(Adebayo et al., 2018, “Sanity Checks for Saliency Maps”: guided backprop's maps change only as the first layers go).";

/** The correlation after the first randomization stage (the top layers randomized), or null. */
export function topRandomization(cell: SanityCell): number | null {
  const first = cell.mean?.[0];
  return finite(first) ? first : null;
}

/** The correlation after the last randomization stage (every layer randomized), or null. */
export function fullRandomization(cell: SanityCell): number | null {
  const last = cell.mean?.[cell.mean.length - 1];
  return finite(last) ? last : null;
}

/** Whether a cell earns the badge: the server's flag, else its correlation once the top is randomized at the threshold or above. */
export function flagged(cell: SanityCell, threshold: number): boolean {
  if (!cell.ok) return false;
  if (typeof cell.badge === "boolean") return cell.badge;
  const r = topRandomization(cell);
  return r !== null && r >= threshold;
}

/** One line per checked cell: "ρ = 0.85 with the top 1 weighted layer randomized, 0.35 with all 6 (flagged at 0.50 or above after the top)". */
export function sanitySummary(cell: SanityCell, threshold: number): string {
  if (!cell.ok) return cell.error ?? "the sanity check failed";
  const show = (r: number | null) => (r === null ? "–" : r.toFixed(2));
  const top = cell.randomized?.[0] ?? 1;
  const n = cell.randomized?.[cell.randomized.length - 1] ?? cell.stages?.length ?? 0;
  return `ρ = ${show(topRandomization(cell))} with the top ${top} weighted layer${top === 1 ? "" : "s"} randomized, ` +
    `${show(fullRandomization(cell))} with all ${n} (flagged at ${threshold.toFixed(2)} or above after the top)`;
}

/** Background of an agreement cell: RdBu over [-1, 1] (blue: agree, red: disagree), as an rgb() string. */
export const agreementColor = (rho: number | null): string => paletteColor("diverging", finite(rho) ? (1 - Math.max(-1, Math.min(1, rho))) / 2 : 0.5);

/** WCAG relative luminance of an rgb() or #rrggbb colour. */
export function luminance(css: string): number {
  const [r, g, b] = parseRgb(css).map((v) => {
    const c = v / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** Black or white text, whichever contrasts more with the background (always at least 4.58:1). */
export function textOn(background: string): string {
  const l = luminance(background);
  return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#000000" : "#ffffff";
}

/** The mean of the off-diagonal entries of a square matrix (how much a group agrees overall), or null. */
export function offDiagonalMean(matrix: (number | null)[][]): number | null {
  const values = matrix.flatMap((row, i) => row.filter((v, j): v is number => i !== j && finite(v)));
  return values.length ? mean(values) : null;
}

/** The over-training line of a run and method: how much its maps changed between the first and last checkpoint. */
export function firstLastText(c: FirstLastCell, method: string): string {
  if (!c.ok) return `${method}: ${c.error ?? "failed"}`;
  return `${method}: ρ = ${fmt(c.mean)} between step ${c.first} and step ${c.last} (1: the same evidence, 0: unrelated)`;
}

/** The scatter's y axis: distinct predicted classes, or how much the models' evidence differs where they agree on the label. */
export type ScatterAxis = "classes" | "evidence";

/** The samples of `visible` the evidence axis covers (a number, not null). */
export const evidenceCovered = (values: (number | null)[], visible: number[]): number[] => visible.filter((i) => finite(values[i]));

/** The panel's verdict in sentences: the best-ranked method that passes the sanity check (when it ran), the methods
 * no better than the random order on `metric`, and those the sanity check flagged. */
export function verdict(rows: RankRow[], metric: Metric, flaggedIds: Set<string> | null, label: (id: string) => string): string[] {
  const random = rows.find((r) => r.method === RANDOM_ROW)?.rank ?? null;
  const methods = rows.filter((r) => r.method !== RANDOM_ROW && r.rank !== null);
  const beat = methods.filter((r) => random !== null && r.rank! < random);
  const best = beat.find((r) => !flaggedIds?.has(r.method));
  const out: string[] = [];
  const area = (r: RankRow) => `${METRIC_LABELS[metric]} ${fmt(r.means[metric]!)}`;
  const randomRow = rows.find((r) => r.method === RANDOM_ROW);
  if (best)
    out.push(
      `Trust first: ${label(best.method)}, the most faithful on ${METRIC_LABELS[metric]} (${area(best)} against ${fmt(randomRow?.means[metric])} for a random order)` +
        (flaggedIds ? " that passes the sanity check." : "; turn on the sanity check to see whether it depends on the weights."),
    );
  else if (methods.length)
    out.push(`None of the chosen methods is better than a random order on ${METRIC_LABELS[metric]}${flaggedIds && beat.length ? " and passes the sanity check" : ""}.`);
  const worse = methods.filter((r) => !beat.includes(r));
  if (worse.length) out.push(`No better than a random order on ${METRIC_LABELS[metric]}: ${worse.map((r) => label(r.method)).join(", ")}.`);
  if (flaggedIds?.size) out.push(`Barely depend on the weights (sanity check): ${[...flaggedIds].map(label).join(", ")}.`);
  return out;
}
