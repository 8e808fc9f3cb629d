import { test } from "node:test";
import assert from "node:assert/strict";
import { clampParam, classOption, controlId, defaultParams, filterRuns, latestStep, parseClassOption } from "../src/views/setup";
import { formatValue } from "../src/views/legend";
import { spreadSteps } from "../src/views/timeline";
import type { MethodInfo, RunInfo } from "../src/types";

const run = (name: string, steps: number[]): RunInfo => ({
  run: name,
  checkpoints: steps.map((step) => ({ step, model_name: "m", input_shape: [28, 28, 1], num_classes: 10, wall_time: 0, version: "w:f" })),
  sample_sets: [],
});

test("the class search reads 'index: name', a bare index or an exact name", () => {
  const names = ["tench", "goldfish", "great white shark"];
  assert.equal(classOption(2, names), "2: great white shark");
  assert.equal(classOption(7, names), "7: class 7");
  assert.equal(parseClassOption("1: goldfish", names), 1);
  assert.equal(parseClassOption(" 2 ", names), 2);
  assert.equal(parseClassOption("Great White Shark", names), 2);
  assert.equal(parseClassOption("9", names), null);
  assert.equal(parseClassOption("salmon", names), null);
  assert.equal(parseClassOption("12abc", names), null);
});

test("numeric parameters are clamped to their schema and ints rounded", () => {
  const steps = { name: "steps", type: "int" as const, default: 64, min: 1, max: 512 };
  assert.equal(clampParam(3.6, steps), 4);
  assert.equal(clampParam(0, steps), 1);
  assert.equal(clampParam(1e6, steps), 512);
  assert.equal(clampParam(NaN, steps), null);
  assert.equal(clampParam(0.25, { name: "eps", type: "float", default: 0.1, min: null, max: null }), 0.25);
});

test("defaults come from the method's own schema", () => {
  const m: MethodInfo = {
    id: "ig", label: "IG", family: "gradient", description: "", signed: true, takes_layer: false, takes_neuron: false,
    params: [{ name: "steps", type: "int", default: 64 }, { name: "reference", type: "choice", default: "black", choices: ["black", "mean"] }],
  };
  assert.deepEqual(defaultParams(m), { steps: 64, reference: "black" });
});

test("runs filter by a case-insensitive regex as in TensorBoard; the latest step is the last checkpoint", () => {
  const runs = [run("sweep/lr_0.1", [1, 5]), run("Sweep/lr_0.01", [2]), run("baseline", [])];
  const names = (pattern: string) => filterRuns(runs, pattern).runs.map((r) => r.run);
  assert.deepEqual(names("SWEEP"), ["sweep/lr_0.1", "Sweep/lr_0.01"]);
  assert.deepEqual(names("lr_0\\.1$"), ["sweep/lr_0.1"]);
  assert.deepEqual(names("^base|0\\.01"), ["Sweep/lr_0.01", "baseline"]);
  assert.deepEqual(names(""), ["sweep/lr_0.1", "Sweep/lr_0.01", "baseline"]);
  const bad = filterRuns(runs, "lr_(0");
  assert.deepEqual(bad.runs, []);
  assert.match(bad.error!, /^not a valid regular expression: /);
  assert.equal(filterRuns(runs, "lr").error, null);
  assert.equal(latestStep(runs[0]), 5);
  assert.equal(latestStep(runs[2]), null);
});

test("legend numbers stay short", () => {
  assert.equal(formatValue(0.000123), "1.2e-4");
  assert.equal(formatValue(0.0379123), "0.0379");
  assert.equal(formatValue(-12.345), "-12.3");
  assert.equal(formatValue(123456), "1.2e+5");
  assert.equal(formatValue(0), "0");
});

test("the over-training strip spreads its steps evenly, ends included", () => {
  assert.deepEqual(spreadSteps([1, 2, 3], 8), [1, 2, 3]);
  assert.deepEqual(spreadSteps([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], 3), [0, 50, 100]);
  assert.deepEqual(spreadSteps([5, 6, 7, 8, 9], 4), [5, 6, 8, 9]);
  assert.deepEqual(spreadSteps([5, 6, 7], 1), [7]);
  assert.equal(spreadSteps(Array.from({ length: 1000 }, (_, i) => i), 8).length, 8);
});

test("control ids from run names are distinct however the names use '-'", () => {
  assert.notEqual(controlId("chip", "a-1", 2), controlId("chip", "a", "1-2"));
  assert.equal(controlId("run", "sweep/lr 0.1"), "xai-run-sweep%2Flr%200.1");
});
