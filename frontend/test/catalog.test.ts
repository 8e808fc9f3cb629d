import { test } from "node:test";
import assert from "node:assert/strict";
import { classNames, sampleCount, sampleSetOf } from "../src/catalog";
import type { RunInfo } from "../src/types";

const runs: RunInfo[] = [
  {
    run: "a",
    checkpoints: [{ step: 3, model_name: "m", input_shape: [28, 28, 1], num_classes: 3, wall_time: 0, version: "w:f" }],
    sample_sets: [
      { name: "val", count: 200, image_shape: [28, 28, 1], has_labels: true, class_names: ["x", "y", "z"], sha256: "ab" },
      { name: "raw", count: 5, image_shape: [28, 28, 1], has_labels: false, class_names: null, sha256: "cd" },
    ],
  },
];

test("sample sets are found by run and name; unknown ones count zero", () => {
  assert.equal(sampleSetOf(runs, { run: "a", name: "raw" })?.count, 5);
  assert.equal(sampleCount(runs, { run: "a", name: "val" }), 200);
  assert.equal(sampleCount(runs, { run: "b", name: "val" }), 0);
  assert.equal(sampleCount(runs, null), 0);
});

test("class names come from the sample set, else from the model's class count", () => {
  assert.deepEqual(classNames(runs, { run: "a", name: "val" }, undefined), ["x", "y", "z"]);
  assert.deepEqual(classNames(runs, { run: "a", name: "raw" }, { run: "a", step: 3 }), ["class 0", "class 1", "class 2"]);
  assert.deepEqual(classNames(runs, { run: "a", name: "raw" }, { run: "a", step: 9 }), []);
});
