import { test } from "node:test";
import assert from "node:assert/strict";
import {
  agreementColor,
  beatsRandom,
  curvePath,
  flagged,
  luminance,
  offDiagonalMean,
  RANDOM_ROW,
  rankMethods,
  sampleScores,
  sanitySummary,
  scoreText,
  textOn,
  type ScoredMap,
} from "../src/trust";
import type { ScoreCell } from "../src/types";

// The planned answer of POST scores for one column of two samples (docs/http_api.md).
const cell: ScoreCell = {
  run: "a",
  step: 3,
  method: "gradient",
  ok: true,
  scores: {
    deletion: { auc: [0.2, 0.5], random_auc: [0.4, 0.45], curves: [[1, 0.5, 0.1], [1, 0.9, 0.2]], random_curves: [[1, 0.7, 0.3], [1, 0.8, 0.4]], better: "lower" },
    insertion: { auc: [0.7, 0.3], random_auc: [0.5, 0.5], better: "higher" },
    morf: { auc: [0.1, Number.NaN], random_auc: [0.3, 0.3], better: "lower" },
  },
};

test("a sample's scores are read per metric; missing or non-finite numbers leave that metric out", () => {
  const first = sampleScores(cell, 0);
  assert.deepEqual(Object.keys(first).sort(), ["deletion", "insertion", "morf"]);
  assert.deepEqual(first.deletion, { auc: 0.2, random: 0.4, better: "lower", curve: [1, 0.5, 0.1], randomCurve: [1, 0.7, 0.3] });
  assert.equal(first.insertion!.curve, null);
  const second = sampleScores(cell, 1);
  assert.equal(second.morf, undefined); // NaN area
  assert.equal(sampleScores({ ...cell, scores: undefined }, 0).deletion, undefined);
  // Without "better" the metric's own direction is taken: deletion and MoRF lower, insertion and LeRF higher.
  const bare = sampleScores({ ...cell, scores: { lerf: { auc: [0.6], random_auc: [0.5] } as never } }, 0);
  assert.equal(bare.lerf!.better, "higher");
});

test("beating random depends on which way is better", () => {
  const [first, second] = [sampleScores(cell, 0), sampleScores(cell, 1)];
  assert.equal(beatsRandom(first.deletion!), true); // 0.2 < 0.4, lower is better
  assert.equal(beatsRandom(second.deletion!), false); // 0.5 > 0.45
  assert.equal(beatsRandom(first.insertion!), true); // 0.7 > 0.5, higher is better
  assert.equal(beatsRandom(second.insertion!), false);
  assert.equal(scoreText("deletion", first.deletion!), "deletion 0.200 · random 0.400 · lower is better");
});

const scored = (method: string, run: string, index: number, del: number, ins: number, rnd = 0.45): ScoredMap => ({
  method,
  run,
  step: 1,
  index,
  scores: {
    deletion: { auc: del, random: rnd, better: "lower", curve: null, randomCurve: null },
    insertion: { auc: ins, random: 1 - rnd, better: "higher", curve: null, randomCurve: null },
  },
});

test("methods are ranked by their mean area on the chosen metric, the random order among them", () => {
  const maps = [
    scored("gradient", "a", 0, 0.3, 0.6), scored("gradient", "a", 1, 0.5, 0.4), // mean 0.4, 0.5
    scored("occlusion", "a", 0, 0.1, 0.9), scored("occlusion", "a", 1, 0.2, 0.7), // mean 0.15, 0.8
    scored("guided", "a", 0, 0.7, 0.2), scored("guided", "a", 1, 0.6, 0.3), // mean 0.65, 0.25
  ]; // prettier-ignore
  const rows = rankMethods(maps, "deletion", ["gradient", "occlusion", "guided"]);
  assert.deepEqual(rows.map((r) => [r.method, r.rank]), [["occlusion", 1], ["gradient", 2], [RANDOM_ROW, 3], ["guided", 4]]);
  const gradient = rows.find((r) => r.method === "gradient")!;
  assert.ok(Math.abs(gradient.means.deletion! - 0.4) < 1e-12 && Math.abs(gradient.means.insertion! - 0.5) < 1e-12);
  assert.equal(gradient.count, 2);
  // The random order: one value per distinct (model, sample), whichever method's answer carried it.
  const random = rows.find((r) => r.method === RANDOM_ROW)!;
  assert.equal(random.count, 2);
  assert.ok(Math.abs(random.means.deletion! - 0.45) < 1e-12 && Math.abs(random.means.insertion! - 0.55) < 1e-12);
  // Higher is better on insertion: the order flips.
  assert.deepEqual(rankMethods(maps, "insertion", ["gradient", "occlusion", "guided"]).map((r) => r.method), ["occlusion", RANDOM_ROW, "gradient", "guided"]);
});

test("equal means share a rank, and a method without the chosen metric comes last unranked", () => {
  const maps = [scored("a", "m", 0, 0.2, 0.5), scored("b", "m", 0, 0.2, 0.5), scored("c", "m", 0, 0.4, 0.5)];
  maps.push({ method: "d", run: "m", step: 1, index: 0, scores: { lerf: { auc: 0.1, random: 0.1, better: "higher", curve: null, randomCurve: null } } });
  const rows = rankMethods(maps, "deletion", ["a", "b", "c", "d"]);
  assert.deepEqual(rows.map((r) => [r.method, r.rank]), [["a", 1], ["b", 1], ["c", 3], [RANDOM_ROW, 4], ["d", null]]);
  assert.deepEqual(rankMethods([], "deletion", ["a"]), []);
});

test("a curve is drawn over the unit square, y up, values clamped", () => {
  assert.equal(curvePath([1, 0.5, 0], 100, 50), "M0,0L50,25L100,50");
  assert.equal(curvePath([1.2, -0.1], 10, 10), "M0,0L10,10");
  assert.equal(curvePath([0.5], 10, 10), "");
});

test("the sanity badge: the server's flag wins; without one, the correlation once the top is randomized, at the threshold or above", () => {
  const base = { run: "a", step: 1, method: "guided_backprop", ok: true, stages: ["dense", "conv2", "conv1"], mean: [0.95, 0.9, 0.3] };
  assert.equal(flagged(base, 0.5), true); // the paper's finding: it holds through the top, falls only at the first layers
  assert.equal(flagged({ ...base, mean: [0.2, 0.1, 0.05] }, 0.5), false);
  assert.equal(flagged({ ...base, mean: [null, 0.9, 0.9] }, 0.5), false); // every map constant after the top: no verdict
  assert.equal(sanitySummary({ ...base, randomized: [1, 3, 5] }, 0.5).includes("with all 5 (flagged"), true);
  assert.equal(flagged({ ...base, badge: false }, 0.5), false);
  assert.equal(flagged({ ...base, ok: false, badge: true }, 0.5), false);
  assert.equal(
    sanitySummary({ ...base, randomized: [1, 2, 3] }, 0.5),
    "ρ = 0.95 with the top 1 weighted layer randomized, 0.30 with all 3 (flagged at 0.50 or above after the top)",
  );
  assert.equal(sanitySummary({ ...base, ok: false, error: "no such layer" }, 0.5), "no such layer");
});

test("agreement colours run from blue (1) over white (0) to red (-1), and their text always contrasts 4.5:1", () => {
  const [r1, , b1] = agreementColor(1).match(/\d+/g)!.map(Number);
  const [r2, , b2] = agreementColor(-1).match(/\d+/g)!.map(Number);
  assert.ok(b1 > r1 && r2 > b2);
  assert.ok(luminance(agreementColor(0)) > 0.85);
  assert.equal(agreementColor(Number.NaN), agreementColor(0));
  for (let k = 0; k <= 40; k++) {
    const bg = agreementColor(-1 + k / 20);
    const l = luminance(bg);
    const t = luminance(textOn(bg));
    const ratio = (Math.max(l, t) + 0.05) / (Math.min(l, t) + 0.05);
    assert.ok(ratio >= 4.5, `${bg}: ${ratio}`);
  }
});

test("the off-diagonal mean says how much a group agrees", () => {
  assert.equal(offDiagonalMean([[1, 0.5], [0.5, 1]]), 0.5);
  assert.equal(offDiagonalMean([[1]]), null);
});

test("the verdict names the best method that beats random and passes the sanity check, and says why the others do not", async () => {
  const { verdict } = await import("../src/trust");
  const maps = [scored("gradient", "a", 0, 0.3, 0.6), scored("input_t_gradient", "a", 0, 0.2, 0.7), scored("guided", "a", 0, 0.6, 0.3)];
  const rows = rankMethods(maps, "deletion", ["gradient", "input_t_gradient", "guided"]);
  const upper = (id: string) => id.toUpperCase();
  assert.deepEqual(verdict(rows, "deletion", new Set(["input_t_gradient"]), upper), [
    "Trust first: GRADIENT, the most faithful on deletion (deletion 0.300 against 0.450 for a random order) that passes the sanity check.",
    "No better than a random order on deletion: GUIDED.",
    "Barely depend on the weights (sanity check): INPUT_T_GRADIENT.",
  ]);
  // Without the sanity check the best-ranked one is named, with the advice to check it.
  assert.match(verdict(rows, "deletion", null, upper)[0], /^Trust first: INPUT_T_GRADIENT, .*turn on the sanity check/);
  assert.match(verdict(rows, "deletion", new Set(["input_t_gradient", "gradient"]), upper)[0], /^None of the chosen methods/);
});
