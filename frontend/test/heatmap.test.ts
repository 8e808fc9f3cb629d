import { test } from "node:test";
import assert from "node:assert/strict";
import { colorize, decodeFloat32, domainFor, encodeFloat32, mapAt, paletteFor, parseRgb, scaleFor, sharedScales, unit } from "../src/heatmap";

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
