import { test } from "node:test";
import assert from "node:assert/strict";
import { LatestRequest, rowsText } from "../src/suggest";

test("a new suggestions request hands back the stale one to cancel, once", () => {
  const latest = new LatestRequest();
  assert.equal(latest.start("s-1"), null);
  assert.equal(latest.start("s-2"), "s-1"); // the selection changed while s-1 ran: cancel s-1
  assert.equal(latest.isCurrent("s-1"), false);
  assert.equal(latest.isCurrent("s-2"), true);
  assert.equal(latest.drop(), "s-2");
  assert.equal(latest.drop(), null); // nothing left to cancel twice
  assert.equal(latest.isCurrent("s-2"), false);
});

test("progress reads as rows done of every model's rows", () => {
  assert.equal(rowsText(0, 0), "starting…");
  assert.equal(rowsText(12800, 60000), "12,800 of 60,000 rows (21%)");
  assert.equal(rowsText(60000, 60000), "60,000 of 60,000 rows (100%)");
  assert.equal(rowsText(70000, 60000), "70,000 of 60,000 rows (100%)");
});
