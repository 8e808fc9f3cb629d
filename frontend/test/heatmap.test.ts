import { test } from "node:test";
import assert from "node:assert/strict";
import { colorize, decodeFloat32, domainFor, encodeFloat32, finiteRange, isConstant, mapAt, paletteFor, parseRgb, scaleFor, scaleGroup, sharedScales, unit } from "../src/heatmap";
import { mapKey, type MapQuery } from "../src/model";

test("decodeFloat32 reads little-endian float32 from base64", () => {
  // bytes of 1.0, -2.5 as little-endian float32, written by hand
  const b64 = Buffer.from([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x20, 0xc0]).toString("base64");
  assert.deepEqual(Array.from(decodeFloat32(b64)), [1, -2.5]);
});

test("decodeFloat32 inverts encodeFloat32 and rejects a ragged payload", () => {
  const values = [0, 0.5, -1e-8, 3.25e5, -7];
  assert.deepEqual(Array.from(decodeFloat32(encodeFloat32(values))), Array.from(Float32Array.from(values)));
  assert.throws(() => decodeFloat32(Buffer.from([1, 2, 3]).toString("base64")), /float32/);
});

test("mapAt views the i-th map of a stack", () => {
  const stack = Float32Array.from({ length: 2 * 2 * 3 }, (_, i) => i);
  assert.deepEqual(Array.from(mapAt(stack, [2, 2, 3], 1)), [6, 7, 8, 9, 10, 11]);
});

test("signed maps get a symmetric diverging domain, unsigned ones a sequential one", () => {
  assert.equal(paletteFor(true, [-0.2, 1]), "diverging");
  assert.equal(paletteFor(true, [0, 1]), "sequential");
  assert.equal(paletteFor(false, [0, 1]), "sequential");
  assert.deepEqual(domainFor("diverging", [-0.2, 1]), [-1, 1]);
  assert.deepEqual(domainFor("sequential", [0.1, 0.7]), [0.1, 0.7]);
});

test("unit clamps and survives empty domains and NaN", () => {
  assert.equal(unit(5, 0, 10), 0.5);
  assert.equal(unit(-3, 0, 10), 0);
  assert.equal(unit(30, 0, 10), 1);
  assert.equal(unit(1, 1, 1), 0.5);
  assert.equal(unit(NaN, 0, 1), 0.5);
});

test("diverging colours: zero is near white, positive red, negative blue", () => {
  const px = colorize([-1, 0, 1], "diverging", [-1, 1]);
  const [neg, zero, pos] = [0, 1, 2].map((k) => Array.from(px.slice(k * 4, k * 4 + 4)));
  assert.ok(zero[0] > 230 && zero[1] > 230 && zero[2] > 230, `zero is ${zero}`);
  assert.ok(pos[0] > 100 && pos[0] > pos[2] * 2, `positive is ${pos}`);
  assert.ok(neg[2] > 50 && neg[2] > neg[0] * 2, `negative is ${neg}`);
  assert.ok([neg, zero, pos].every((p) => p[3] === 255));
});

test("sequential colours grow brighter with the value", () => {
  const px = colorize([0, 0.5, 1], "sequential", [0, 1]);
  const lum = [0, 1, 2].map((k) => px[k * 4] + px[k * 4 + 1] + px[k * 4 + 2]);
  assert.ok(lum[0] < lum[1] && lum[1] < lum[2], `luminance ${lum}`);
});

test("parseRgb reads both CSS forms", () => {
  assert.deepEqual(parseRgb("rgb(1, 2, 3)"), [1, 2, 3]);
  assert.deepEqual(parseRgb("#ff8000"), [255, 128, 0]);
  assert.throws(() => parseRgb("red"));
});

test("shared scales cover every member of a group; one signed member makes it diverging", () => {
  const scales = sharedScales([
    { group: "gradient", signed: false, range: [0, 0.5] },
    { group: "gradient", signed: false, range: [0.1, 2] },
    { group: "lrp", signed: true, range: [-0.1, 0.3] },
    { group: "lrp", signed: true, range: [0, 0.2] },
  ]);
  assert.deepEqual(scales.get("gradient"), { palette: "sequential", domain: [0, 2] });
  assert.deepEqual(scales.get("lrp"), { palette: "diverging", domain: [-0.3, 0.3] });
  assert.deepEqual(scaleFor(true, [0.2, 0.4]), { palette: "sequential", domain: [0.2, 0.4] });
});

test("a shared range groups maps by row, column, method or the whole grid; 'own' groups none", () => {
  const a = { index: 0, run: "r", step: 1, method: "gradient" };
  const b = { index: 1, run: "r", step: 1, method: "gradient" }; // same column, next row
  const c = { index: 0, run: "s", step: 1, method: "gradient" }; // same row, another model
  assert.equal(scaleGroup("own", a), null);
  assert.equal(scaleGroup("row", a), scaleGroup("row", c));
  assert.notEqual(scaleGroup("row", a), scaleGroup("row", b));
  assert.equal(scaleGroup("column", a), scaleGroup("column", b));
  assert.notEqual(scaleGroup("column", a), scaleGroup("column", c));
  assert.equal(scaleGroup("method", b), scaleGroup("method", c));
  assert.equal(scaleGroup("grid", { ...a, method: "lrp" }), scaleGroup("grid", b));
});

test("a map's own range skips non-finite values; a one-value range is constant", () => {
  assert.deepEqual(finiteRange([3, NaN, -2, Infinity]), [-2, 3]);
  assert.deepEqual(finiteRange([NaN]), [0, 0]);
  assert.ok(isConstant(finiteRange(new Float32Array(9))));
  assert.ok(!isConstant([0, 1e-30]));
});

test("a map's cache key changes with the sample set's and the checkpoint's versions", () => {
  const q: MapQuery = {
    samples: { run: "r", name: "val" }, model: { run: "r", step: 1 }, method: { id: "gradient", params: {} },
    target: { kind: "predicted" }, layer: null, neuron: null,
  }; // prettier-ignore
  const key = (samples: string, model: string) => mapKey(q, 0, { samples: () => samples, model: () => model });
  assert.notEqual(key("sha-1", "ck"), key("sha-2", "ck"));
  assert.notEqual(key("sha-1", "ck"), key("sha-1", "ck2"));
  assert.equal(key("sha-1", "ck"), key("sha-1", "ck"));
});
