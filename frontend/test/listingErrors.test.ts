import { test } from "node:test";
import assert from "node:assert/strict";
import { listingErrorLines } from "../src/views/listingErrors";

test("listing errors read as 'run: message', a logdir-wide one as its message alone", () => {
  const lines = listingErrorLines([
    { run: "alpha", message: "xai/checkpoints/step-000000001.json is skipped: not JSON" },
    { run: null, message: "the runs of gs://b/logs cannot be listed: denied" },
  ]);
  assert.deepEqual(lines, ["alpha: xai/checkpoints/step-000000001.json is skipped: not JSON", "the runs of gs://b/logs cannot be listed: denied"]);
  assert.deepEqual(listingErrorLines([]), []);
});
