import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mapsNpz, predictionsCsv } from "../src/gridExport";
import type { MapResult, PredResult } from "../src/model";

const PYTHON = process.env.XAI_PYTHON ?? join(process.cwd(), "..", ".venv", "bin", "python");
const col = (run: string, step: number, method: string) => ({ model: { run, step }, method, methodLabel: method });
const map = (fill: number): MapResult => ({ values: Float32Array.from({ length: 6 }, (_, i) => fill + i), height: 2, width: 3, range: [fill, fill + 5], signed: false });

test("the .npz holds one [rows, H, W] array per complete column, stacked in row order", () => {
  const columns = [col("sweep/a", 3, "gradient"), col("b", 1, "grad_cam"), col("b", 1, "lrp.z")];
  const lookup = (c: ReturnType<typeof col>, i: number): MapResult | undefined =>
    c.method === "gradient" ? map(10 * i) : c.method === "grad_cam" ? (i === 7 ? { error: "no conv layer" } : map(1)) : undefined;
  const { bytes, skipped } = mapsNpz(columns, [4, 7], lookup);
  assert.deepEqual(skipped, ["b_step1_grad_cam", "b_step1_lrp.z"]);
  const dir = mkdtempSync(join(tmpdir(), "xai-npz-"));
  writeFileSync(join(dir, "m.npz"), bytes);
  const out = JSON.parse(
    execFileSync(PYTHON, ["-c", "import numpy as np, json, sys; z = np.load(sys.argv[1]); print(json.dumps({k: z[k].tolist() for k in z.files}))", join(dir, "m.npz")]).toString(),
  );
  assert.deepEqual(Object.keys(out).sort(), ["indices", "sweep_a_step3_gradient"]);
  assert.deepEqual(out.indices, [4, 7]);
  assert.deepEqual(out.sweep_a_step3_gradient, [[[40, 41, 42], [43, 44, 45]], [[70, 71, 72], [73, 74, 75]]]);
});

test("the predictions CSV has one line per sample, model and rank, failed models left out", () => {
  const models = [{ run: "a", step: 1 }, { run: "b", step: 2 }];
  const lookup = (m: { run: string }, i: number): PredResult | undefined =>
    m.run === "a" ? { classes: [2, 0], scores: [0.75, 0.25], label: i === 0 ? 2 : null } : { error: "corrupt checkpoint" };
  const csv = predictionsCsv([0, 5], models, lookup, (c) => ["cat", "dog", "bird, small"][c]);
  assert.equal(
    csv,
    "index,label,run,step,rank,class,class_name,score\r\n" +
      '0,2,a,1,1,2,"bird, small",0.75\r\n0,2,a,1,2,0,cat,0.25\r\n' +
      '5,,a,1,1,2,"bird, small",0.75\r\n5,,a,1,2,0,cat,0.25\r\n',
  );
});

test("the .npz carries each column's scores per metric, and the scores CSV one line per sample, column and metric", async () => {
  const { scoresCsv } = await import("../src/gridExport");
  const columns = [col("a", 1, "gradient"), col("a", 1, "occlusion")];
  const score = (auc: number) => ({ auc, random: 0.5, better: "lower" as const, curve: [1, auc, 0], randomCurve: [1, 0.5, 0] });
  const lookup = (c: ReturnType<typeof col>, i: number) => (c.method === "gradient" ? { deletion: score(0.1 * (i + 1)) } : i === 4 ? { error: "no map" } : { deletion: score(0.2) });
  const { bytes } = mapsNpz(columns, [4, 7], (c, i) => map(i), lookup);
  const dir = mkdtempSync(join(tmpdir(), "xai-npz-"));
  writeFileSync(join(dir, "m.npz"), bytes);
  const out = JSON.parse(
    execFileSync(PYTHON, ["-c", "import numpy as np, json, sys; z = np.load(sys.argv[1]); print(json.dumps({k: np.round(z[k].astype(float), 6).tolist() for k in z.files}))", join(dir, "m.npz")]).toString(),
  );
  assert.deepEqual(out.a_step1_gradient_deletion_auc, [0.5, 0.8]);
  assert.deepEqual(out.a_step1_gradient_deletion_random_auc, [0.5, 0.5]);
  assert.deepEqual(out.a_step1_gradient_deletion_curve, [[1, 0.5, 0], [1, 0.8, 0]]);
  assert.equal(out.a_step1_occlusion_deletion_auc, undefined); // one of its rows has no score
  assert.deepEqual(Object.keys(out).filter((k) => k.includes("insertion")), []);
  assert.equal(
    scoresCsv(columns, [4, 7], lookup),
    "index,run,step,method,metric,better,auc,random_auc\r\n4,a,1,gradient,deletion,lower,0.5,0.5\r\n7,a,1,gradient,deletion,lower,0.8,0.5\r\n7,a,1,occlusion,deletion,lower,0.2,0.5\r\n",
  );
});
