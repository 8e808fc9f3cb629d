import { test } from "node:test";
import assert from "node:assert/strict";
import { applicabilityNote, headNote, withApplicability } from "../src/heads";

test("a binary or multi-label head gets its note; softmax and logits read as usual", () => {
  assert.match(headNote("binary_sigmoid"), /1 − p/);
  assert.match(headNote("binary_logit"), /negated logit/);
  assert.match(headNote("multilabel"), /no softmax across labels/);
  assert.equal(headNote("softmax"), "");
  assert.equal(headNote("logits"), "");
  assert.equal(headNote(undefined), "");
});

test("the picker says refused, unknown, or nothing: never ok for unknown", () => {
  assert.equal(applicabilityNote({ ok: true, reason: "" }), null);
  assert.equal(applicabilityNote(undefined), null);
  assert.equal(applicabilityNote({ ok: false, reason: "layer 'ln' (LayerNormalization)" }), "not for this model: layer 'ln' (LayerNormalization)");
  assert.match(applicabilityNote({ ok: null, reason: "unknown until computed: no worker answered" }) ?? "", /^may not apply: unknown until computed/);
});

test("the worker's answer replaces the manifest's guess, layers and head kept", () => {
  const layers = {
    layers: [{ name: "conv", type: "Conv2D", output_shape: [4, 4, 2], conv: true }],
    default_layer: "conv",
    head: "binary_sigmoid",
    methods: { "lrp.epsilon": { ok: null, reason: "unknown until computed" } },
    methods_from: "manifest" as const,
  };
  const merged = withApplicability(layers, { run: "r", step: 1, methods: { "lrp.epsilon": { ok: false, reason: "layer 'x'" } }, methods_from: "model" });
  assert.equal(merged.methods_from, "model");
  assert.deepEqual(merged.methods["lrp.epsilon"], { ok: false, reason: "layer 'x'" });
  assert.equal(merged.head, "binary_sigmoid");
  assert.equal(merged.default_layer, "conv");
});
