import { test } from "node:test";
import assert from "node:assert/strict";
import { colorIds, colorOf, INACTIVE, PALETTE, parseColorGroup } from "../src/runColors";
import { currentTheme } from "../src/theme";

test("by run, each run takes the next palette colour in TensorBoard's order, wrapping after 7", () => {
  const runs = ["zeta", "alpha", "beta", "r3", "r4", "r5", "r6", "r7"];
  const ids = colorIds(runs, parseColorGroup(null));
  assert.deepEqual(runs.map((r) => ids.get(r)), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(colorOf(ids.get("zeta"), "light"), "#425066");
  assert.equal(colorOf(ids.get("zeta"), "dark"), "#8e98a3");
  assert.equal(colorOf(ids.get("alpha"), "light"), "#12b5cb");
  assert.equal(colorOf(ids.get("r7"), "light"), PALETTE[0][0]); // 7 wraps to the first colour
});

test("grouping by experiment gives every run the first colour; a regex groups by its captures", () => {
  const runs = ["lr_0.1/seed1", "lr_0.01/seed1", "lr_0.1/seed2", "baseline"];
  const exp = colorIds(runs, parseColorGroup("experiment"));
  assert.deepEqual(runs.map((r) => exp.get(r)), [0, 0, 0, 0]);
  const byLr = colorIds(runs, parseColorGroup("regex:lr_([0-9.]+)"));
  assert.deepEqual(runs.map((r) => byLr.get(r)), [0, 1, 0, -1]);
  assert.equal(colorOf(byLr.get("baseline"), "light"), INACTIVE[0]);
  assert.equal(colorOf(byLr.get("baseline"), "dark"), INACTIVE[1]);
  const noCapture = colorIds(runs, parseColorGroup("regex:seed1"));
  assert.deepEqual(runs.map((r) => noCapture.get(r)), [0, 0, -1, -1]);
  const broken = colorIds(runs, parseColorGroup("regex:lr_("));
  assert.deepEqual(runs.map((r) => broken.get(r)), [-1, -1, -1, -1]);
  assert.deepEqual(parseColorGroup("nonsense"), { key: "run" });
});

test("without a TensorBoard page above, the theme is the browser's colour-scheme preference", () => {
  const fake = (dark: boolean, parent?: unknown) => {
    const win: Record<string, unknown> = { matchMedia: (q: string) => ({ matches: dark && q === "(prefers-color-scheme: dark)" }) };
    win.parent = parent ?? win;
    return win as unknown as Window;
  };
  assert.equal(currentTheme(fake(true)), "dark");
  assert.equal(currentTheme(fake(false)), "light");
  const crossOrigin = {
    get document(): Document {
      throw new Error("SecurityError");
    },
  };
  assert.equal(currentTheme(fake(true, crossOrigin)), "dark");
  const body = { classList: { contains: (c: string) => c === "dark-mode" } };
  const tensorBoard = { document: { querySelector: (s: string) => (s === "tb-webapp" ? {} : null), body } };
  assert.equal(currentTheme(fake(false, tensorBoard)), "dark"); // TensorBoard's class wins over the preference
  const lightTb = { document: { querySelector: () => ({}), body: { classList: { contains: () => false } } } };
  assert.equal(currentTheme(fake(true, lightTb)), "light");
});
