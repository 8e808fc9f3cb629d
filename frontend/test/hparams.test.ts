import { test } from "node:test";
import assert from "node:assert/strict";
import { hparamDomains, matchesHparams, runHparams, sessionHparams } from "../src/hparams";

const sessions = sessionHparams([
  { hparams: { lr: 0.1, opt: "adam" }, sessions: [{ name: "sweep/lr_0.1" }] },
  { hparams: { lr: 0.01, opt: "sgd" }, sessions: [{ name: "sweep/lr_0.01" }, { name: "sweep/lr_0.01_again" }] },
  { hparams: { lr: 1, opt: "adam" }, sessions: [{ name: "big" }] },
]);

test("a run takes its own session's hparams, else its nearest parent folder's", () => {
  assert.deepEqual(runHparams("sweep/lr_0.1", sessions), { lr: 0.1, opt: "adam" });
  assert.deepEqual(runHparams("sweep/lr_0.01/train", sessions), { lr: 0.01, opt: "sgd" });
  assert.equal(runHparams("sweep/lr_0.1x", sessions), null); // a prefix of the name is not a folder
  assert.equal(runHparams("other", sessions), null);
});

test("domains list distinct values, numbers in numeric order", () => {
  assert.deepEqual(hparamDomains(sessions), { lr: ["0.01", "0.1", "1"], opt: ["adam", "sgd"] });
});

test("filters match chosen values only; an empty choice matches anything", () => {
  const hp = { lr: 0.1, opt: "adam" };
  assert.equal(matchesHparams(hp, {}), true);
  assert.equal(matchesHparams(hp, { lr: "", opt: "adam" }), true);
  assert.equal(matchesHparams(hp, { lr: "0.01" }), false);
  assert.equal(matchesHparams(null, { lr: "0.1" }), false);
  assert.equal(matchesHparams(null, { lr: "" }), true);
});
