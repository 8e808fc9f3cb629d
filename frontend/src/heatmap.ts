// Attribution maps: decoding from the wire and colouring into RGBA pixels.
import { interpolateInferno, interpolateRdBu } from "d3-scale-chromatic";

/** Little-endian float32 values from base64 text (the wire format of POST attributions). */
export function decodeFloat32(base64: string): Float32Array {
  const binary = atob(base64);
  if (binary.length % 4 !== 0) throw new Error("map data is not a whole number of float32 values");
  const view = new DataView(new ArrayBuffer(binary.length));
  for (let i = 0; i < binary.length; i++) view.setUint8(i, binary.charCodeAt(i));
  const out = new Float32Array(binary.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** Base64 of values as little-endian float32 (the inverse of decodeFloat32). */
export function encodeFloat32(values: ArrayLike<number>): string {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  let binary = "";
  for (let i = 0; i < view.byteLength; i++) binary += String.fromCharCode(view.getUint8(i));
  return btoa(binary);
}

/** The i-th [H, W] map of a [N, H, W] stack, as a view (no copy). */
export function mapAt(stack: Float32Array, shape: number[], i: number): Float32Array {
  const [, h, w] = shape;
  return stack.subarray(i * h * w, (i + 1) * h * w);
}

export type Palette = "diverging" | "sequential";

const LUT_SIZE = 256;

/** 256 RGB entries sampled from a d3 interpolator: lut[3k..3k+2] = colour of t = k / 255. */
function buildLut(interpolate: (t: number) => string): Uint8Array {
  const lut = new Uint8Array(LUT_SIZE * 3);
  for (let k = 0; k < LUT_SIZE; k++) {
    const rgb = parseRgb(interpolate(k / (LUT_SIZE - 1)));
    lut.set(rgb, k * 3);
  }
  return lut;
}

/** [r, g, b] of a CSS colour in 'rgb(r, g, b)' or '#rrggbb' form. */
export function parseRgb(css: string): [number, number, number] {
  const m = /rgb\((\d+),\s*(\d+),\s*(\d+)\)/.exec(css);
  if (m) return [+m[1], +m[2], +m[3]];
  const h = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(css);
  if (h) return [parseInt(h[1], 16), parseInt(h[2], 16), parseInt(h[3], 16)];
  throw new Error(`not a colour: ${css}`);
}

const LUTS: Record<Palette, () => Uint8Array> = (() => {
  const cache: Partial<Record<Palette, Uint8Array>> = {};
  return {
    // Red for positive evidence, blue for negative, white at zero.
    diverging: () => (cache.diverging ??= buildLut((t) => interpolateRdBu(1 - t))),
    sequential: () => (cache.sequential ??= buildLut(interpolateInferno)),
  };
})();

/** The palette for a map: diverging when values may be negative, sequential otherwise. */
export function paletteFor(signed: boolean, range: [number, number]): Palette {
  return signed && range[0] < 0 ? "diverging" : "sequential";
}

/** Display domain: [-m, m] with m = max|range| for diverging, [min, max] for sequential. */
export function domainFor(palette: Palette, range: [number, number]): [number, number] {
  if (palette === "diverging") {
    const m = Math.max(Math.abs(range[0]), Math.abs(range[1]));
    return [-m, m];
  }
  return [range[0], range[1]];
}

export interface ColorScale {
  palette: Palette;
  domain: [number, number];
}

/** A map's own colour scale, from its signed flag and value range. */
export function scaleFor(signed: boolean, range: [number, number]): ColorScale {
  const palette = paletteFor(signed, range);
  return { palette, domain: domainFor(palette, range) };
}

/** One scale per group covering every member's range: diverging if any member is. */
export function sharedScales(items: { group: string; signed: boolean; range: [number, number] }[]): Map<string, ColorScale> {
  const merged = new Map<string, { signed: boolean; range: [number, number] }>();
  for (const it of items) {
    const m = merged.get(it.group);
    if (!m) merged.set(it.group, { signed: it.signed, range: [it.range[0], it.range[1]] });
    else {
      m.signed = m.signed || it.signed;
      m.range = [Math.min(m.range[0], it.range[0]), Math.max(m.range[1], it.range[1])];
    }
  }
  return new Map([...merged].map(([g, m]) => [g, scaleFor(m.signed, m.range)]));
}

/** How maps share colour ranges: each its own, or one range per row, column, method, or the whole grid. */
export type ScaleChoice = "own" | "row" | "column" | "method" | "grid";

export const SCALE_CHOICES: ScaleChoice[] = ["own", "row", "column", "method", "grid"];

/** The group whose maps share one range under `choice` (null: the map keeps its own). */
export function scaleGroup(choice: ScaleChoice, cell: { index: number; run: string; step: number; method: string }): string | null {
  switch (choice) {
    case "own":
      return null;
    case "row":
      return `row ${cell.index}`;
    case "column":
      return JSON.stringify([cell.run, cell.step, cell.method]);
    case "method":
      return cell.method;
    case "grid":
      return "grid";
  }
}

/** [min, max] of the finite values ([0, 0] when there are none). */
export function finiteRange(values: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (Number.isFinite(v)) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

/** A range holding one value: the map is constant, so no colour scale can show it. */
export const isConstant = (range: [number, number]): boolean => range[0] === range[1];

/** Position t in [0, 1] of v in domain [lo, hi] (0.5 when the domain is empty; NaN -> 0.5). */
export function unit(v: number, lo: number, hi: number): number {
  if (!(hi > lo) || !Number.isFinite(v)) return 0.5;
  const t = (v - lo) / (hi - lo);
  return t < 0 ? 0 : t > 1 ? 1 : t;
}

/** RGBA pixels (alpha 255) of a [H, W] map: colour = palette(unit(v, domain)). */
export function colorize(map: ArrayLike<number>, palette: Palette, domain: [number, number]): Uint8ClampedArray<ArrayBuffer> {
  const lut = LUTS[palette]();
  const out = new Uint8ClampedArray(map.length * 4);
  const [lo, hi] = domain;
  for (let i = 0; i < map.length; i++) {
    const k = Math.round(unit(map[i], lo, hi) * (LUT_SIZE - 1)) * 3;
    out[i * 4] = lut[k];
    out[i * 4 + 1] = lut[k + 1];
    out[i * 4 + 2] = lut[k + 2];
    out[i * 4 + 3] = 255;
  }
  return out;
}

/** CSS colour of t in [0, 1] in a palette (for legends). */
export function paletteColor(palette: Palette, t: number): string {
  const lut = LUTS[palette]();
  const k = Math.round(Math.min(1, Math.max(0, t)) * (LUT_SIZE - 1)) * 3;
  return `rgb(${lut[k]}, ${lut[k + 1]}, ${lut[k + 2]})`;
}
