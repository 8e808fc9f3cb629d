import { test } from "node:test";
import assert from "node:assert/strict";
import { applicabilityNote, headNote, layerChoice, withApplicability } from "../src/heads";

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

test("the worker's folded marks replace the unknown ones, and a folded layer is greyed out with the reason", () => {
  const conv = { name: "conv", type: "Conv2D", output_shape: [4, 4, 2], conv: true };
  const rescaling = { name: "rescaling", type: "Rescaling", output_shape: [6, 6, 1], conv: false };
  const layers = { layers: [{ ...rescaling, folded: null }, { ...conv, folded: null }], default_layer: "conv", folded_layers: null, methods: {}, methods_from: "manifest" as const };
  const reason = "layer 'rescaling' is input preprocessing, folded into the recorded preprocessing";
  const checked = {
    run: "r", step: 1, methods: {}, methods_from: "model" as const,
    layers: [{ ...rescaling, folded: true, reason }, { ...conv, folded: false }], default_layer: "conv", folded_layers: ["rescaling"],
  };
  const merged = withApplicability(layers, checked);
  assert.deepEqual(merged.folded_layers, ["rescaling"]);
  assert.deepEqual(layerChoice(merged.layers[0], merged.default_layer), { label: "rescaling (Rescaling 6x6x1) — folded into the preprocessing", disabled: true, title: reason });
  assert.deepEqual(layerChoice(merged.layers[1], merged.default_layer), { label: "conv (Conv2D 4x4x2) — default", disabled: false, title: null });
  assert.equal(layerChoice(layers.layers[0], "conv").disabled, false); // unknown: offered, never claimed folded
  // an older server's answer (no layers) keeps GET layers' records
  assert.equal(withApplicability(layers, { run: "r", step: 1, methods: {}, methods_from: "model" }).layers, layers.layers);
});
