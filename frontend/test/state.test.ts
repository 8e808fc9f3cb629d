import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeState, encodeState, initialState, stateInHash, withStateInHash, type ViewState } from "../src/state";

const full: ViewState = {
  samples: { run: "sweep/lr=0.1", name: "val" },
  models: [{ run: "sweep/lr=0.1", step: 3 }, { run: "b&c#d", step: 10 }],
  methods: [{ id: "gradient", params: { postprocess: "abs" } }, { id: "smoothgrad", params: { steps: 16, noise: 0.1, on: true } }],
  target: { kind: "class", index: 7 },
  layer: "conv2d_1",
  neuron: 4,
  rows: [5, 2, 9],
  opacity: 0.35,
  zoom: 2,
  timelineRun: "b&c#d",
  timelineStep: 10,
  histogram: "activation",
  filters: { misclassified: true, trueClass: 3, predictedClass: null, topMistakes: 20 },
  hparams: { lr: "0.01", optimizer: "" },
  scale: "method",
  trust: { scores: true, sanity: false, agreement: true, metric: "lerf", fill: "blur" },
  axis: "evidence",
};

test("a state survives the round trip through the URL hash", () => {
  const hash = withStateInHash("#xai", encodeState(full));
  assert.ok(hash.startsWith("#xai&xai="));
  assert.deepEqual(decodeState(stateInHash(hash)!), full);
  assert.deepEqual(decodeState(encodeState(initialState())), initialState());
});

test("other hash components are kept; ours is replaced", () => {
  const once = withStateInHash("#xai&foo=1", encodeState(initialState()));
  const twice = withStateInHash(once, encodeState(full));
  assert.match(twice, /^#xai&foo=1&xai=/);
  assert.equal(twice.split("&").filter((p) => p.startsWith("xai=")).length, 1);
  assert.equal(stateInHash("#scalars"), null);
});

test("a garbled or hostile hash falls back to defaults field by field", () => {
  assert.deepEqual(decodeState("%E0%A4%A"), initialState());
  assert.deepEqual(decodeState(encodeURIComponent("[1,2]")), initialState());
  const s = decodeState(
    encodeURIComponent(
      JSON.stringify({ s: ["r", 5], m: [["r", 1.5], ["ok", 2], "x"], t: -1, r: [-1, "a"], o: 7, a: [["g", { p: { q: 1 } }]] }),
    ),
  );
  assert.equal(s.samples, null);
  assert.deepEqual(s.models, [{ run: "ok", step: 2 }]);
  assert.deepEqual(s.target, { kind: "predicted" });
  assert.deepEqual(s.rows, [0]);
  assert.equal(s.opacity, initialState().opacity);
  assert.deepEqual(s.methods, [{ id: "g", params: {} }]);
});

test("every shared colour range is a choice the URL keeps; an unknown one falls back to each map's own", () => {
  for (const scale of ["own", "row", "column", "method", "grid"] as const)
    assert.equal(decodeState(encodeState({ ...full, scale })).scale, scale);
  assert.equal(decodeState(encodeURIComponent(JSON.stringify({ sc: "everything" }))).scale, "own");
});

test("the trust panel's switches, metric and fill are kept in the URL; unknown values fall back field by field", () => {
  assert.deepEqual(decodeState(encodeState(full)).trust, full.trust);
  const s = decodeState(encodeURIComponent(JSON.stringify({ q: [1, "yes", 1, "auc", "noise"] })));
  assert.deepEqual(s.trust, { scores: true, sanity: false, agreement: true, metric: "deletion", fill: "mean" });
});
