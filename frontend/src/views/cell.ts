// One grid cell: the sample image, its map overlaid, the value under the pointer, top-k predictions.
import { colorize, isConstant, scaleFor, type ColorScale } from "../heatmap";
import { h, replaceChildren } from "./dom";
import { cssColor } from "../theme";
import { formatValue, legend } from "./legend";

export interface CellMap {
  values: Float32Array; // [height * width], row-major
  height: number;
  width: number;
  range: [number, number]; // [min, max] of this map alone
  signed: boolean;
  target?: number;
  score?: number;
}

export interface CellPredictions {
  classes: number[];
  scores: number[];
  label: number | null;
}

export interface CellOptions {
  image: HTMLImageElement;
  size: number; // display width in CSS pixels
  opacity: number;
  className: (c: number) => string;
  onHover: (u: number | null, v: number | null) => void; // pointer position as fractions of width and height
  onDownload?: () => void;
  label: string; // what the cell shows, for assistive technology
}

let nextId = 0;

/** Probe moves of the arrow keys, in map pixels. */
const PROBE_KEYS: Record<string, [number, number]> = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

/** The overlay of a map no colour scale can show (constant, or a shared range of one value): one flat grey. */
const FLAT_GREY = [158, 158, 158];

/** RGBA pixels of one colour. */
function flat(length: number, [r, g, b]: number[]): Uint8ClampedArray<ArrayBuffer> {
  const out = new Uint8ClampedArray(length * 4);
  for (let i = 0; i < length; i++) out.set([r, g, b, 255], i * 4);
  return out;
}

export class CellView {
  readonly el: HTMLTableCellElement;
  readonly canvas: HTMLCanvasElement;
  private readonly readout: HTMLElement;
  private readonly status: HTMLElement;
  private readonly preds: HTMLElement;
  private readonly legendSlot: HTMLElement;
  private readonly scoreSlot: HTMLElement;
  private map: CellMap | null = null;
  private mapCanvas: HTMLCanvasElement | null = null;
  private hover: [number, number] | null = null;
  private scale: ColorScale | null = null;
  state: "loading" | "ready" | "error" = "loading";

  constructor(private readonly opts: CellOptions) {
    const readoutId = `xai-readout-${nextId++}`;
    this.canvas = h("canvas", {
      class: "xai-map",
      tabindex: 0,
      role: "img",
      "aria-label": `${opts.label}. Arrow keys move a probe over the map (Shift: 4 pixels), Escape hides it.`,
      "aria-describedby": readoutId,
    });
    this.readout = h("div", { class: "xai-readout", id: readoutId });
    this.status = h("div", { class: "xai-loading" }, "computing…");
    this.preds = h("ul", { class: "xai-preds" });
    this.legendSlot = h("div");
    this.scoreSlot = h("div", { class: "xai-score-slot" });
    const tools = opts.onDownload
      ? h("button", { class: "xai-btn xai-cell-npy", title: "Download this map as .npy", "aria-label": `Download the map of ${opts.label} as .npy`, onclick: () => opts.onDownload!() }, ".npy")
      : null;
    if (tools) tools.style.cssText = "position:absolute;right:4px;top:4px;padding:0 4px;font-size:10px";
    this.el = h("td", { class: "xai-cell", "data-state": "loading" }, tools, this.canvas, this.readout, this.status, this.legendSlot, this.scoreSlot, this.preds);
    this.canvas.addEventListener("mousemove", (e) => {
      const r = this.canvas.getBoundingClientRect();
      opts.onHover((e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height);
    });
    this.canvas.addEventListener("mouseleave", () => opts.onHover(null, null));
    this.canvas.addEventListener("keydown", (e) => this.probeKey(e));
    this.canvas.addEventListener("focus", () => this.readout.setAttribute("aria-live", "polite"));
    this.canvas.addEventListener("blur", () => {
      this.readout.removeAttribute("aria-live");
      opts.onHover(null, null);
    });
    this.resize(opts.size);
    if (opts.image.complete) this.draw();
    else opts.image.addEventListener("load", () => this.draw(), { once: true });
  }

  /** Display width in CSS pixels; height follows the image's aspect ratio. */
  resize(size: number): void {
    this.opts.size = size;
    const img = this.opts.image;
    const aspect = img.naturalWidth ? img.naturalHeight / img.naturalWidth : this.map ? this.map.height / this.map.width : 1;
    this.canvas.width = Math.round(size);
    this.canvas.height = Math.round(size * aspect);
    this.draw();
  }

  setOpacity(opacity: number): void {
    this.opts.opacity = opacity;
    this.draw();
  }

  setMap(map: CellMap): void {
    this.map = map;
    this.setState("ready");
    const target = map.target !== undefined ? `explains ${this.opts.className(map.target)}${map.score !== undefined ? ` (${map.score.toFixed(2)})` : ""}` : "";
    replaceChildren(this.status, target);
    this.status.className = "xai-loading";
    this.paint();
    if (!this.opts.image.complete) this.resize(this.opts.size);
  }

  /** The map's own colour scale, or a shared one (null: back to its own). */
  setScale(scale: ColorScale | null): void {
    if (JSON.stringify(scale) === JSON.stringify(this.scale)) return;
    this.scale = scale;
    if (this.map) this.paint();
  }

  /** The map shown, if any (for shared colour scales). */
  get shownMap(): CellMap | null {
    return this.map;
  }

  /** Colour the map into the offscreen canvas and draw the legend, then redraw. */
  private paint(): void {
    const map = this.map!;
    const own = scaleFor(map.signed, map.range);
    const { palette, domain } = this.scale ?? own;
    // A constant map on its own range, or any map on a range of one value, has no colours to tell apart.
    const unscaled = (!this.scale && isConstant(map.range)) || !(domain[1] > domain[0]);
    const off = document.createElement("canvas");
    off.width = map.width;
    off.height = map.height;
    const pixels = unscaled ? flat(map.values.length, FLAT_GREY) : colorize(map.values, palette, domain);
    off.getContext("2d")!.putImageData(new ImageData(pixels, map.width, map.height), 0, 0);
    this.mapCanvas = off;
    const note = isConstant(map.range)
      ? h("div", { class: "xai-note xai-constant" }, `constant map: every value is ${formatValue(map.range[0])}`)
      : null;
    replaceChildren(this.legendSlot, unscaled ? null : legend(palette, domain), note);
    this.el.dataset.domain = unscaled ? "" : domain.join(",");
    this.el.dataset.range = map.range.join(",");
    this.el.dataset.constant = String(isConstant(map.range));
    this.draw();
  }

  /** The map's faithfulness score line (null: none). */
  setScore(score: HTMLElement | string | null): void {
    replaceChildren(this.scoreSlot, score);
  }

  setError(message: string): void {
    this.map = null;
    this.mapCanvas = null;
    this.setState("error");
    this.status.className = "xai-error";
    replaceChildren(this.status, message);
    replaceChildren(this.legendSlot);
    delete this.el.dataset.domain;
    delete this.el.dataset.range;
    delete this.el.dataset.constant;
    this.draw();
  }

  setLoading(text = "computing…"): void {
    this.setState("loading");
    this.status.className = "xai-loading";
    replaceChildren(this.status, text);
  }

  setPredictions(p: CellPredictions | { error: string }): void {
    if ("error" in p) {
      replaceChildren(this.preds, h("li", { class: "xai-error" }, `predictions failed: ${p.error}`));
      return;
    }
    const right = p.label !== null && p.label >= 0 ? p.classes[0] === p.label : null;
    const mark =
      right === null
        ? null
        : h("span", { class: `xai-mark ${right ? "xai-right" : "xai-wrong"}`, title: right ? "right" : "wrong" }, right ? "✓ right" : "✗ wrong");
    replaceChildren(
      this.preds,
      ...p.classes.map((c, k) =>
        h(
          "li",
          { class: c === p.label ? "xai-true" : null },
          h("span", {}, this.opts.className(c)),
          h("span", {}, p.scores[k].toFixed(3)),
        ),
      ),
      mark ? h("li", {}, mark) : null,
    );
    this.el.dataset.right = right === null ? "" : String(right);
  }

  /** Show the value under a pointer at fractions (u, v) of the panel, or clear it. */
  setHover(u: number | null, v: number | null): void {
    this.hover = u === null || v === null || u < 0 || v < 0 || u >= 1 || v >= 1 ? null : [u, v];
    if (this.hover && this.map) {
      const x = Math.floor(this.hover[0] * this.map.width);
      const y = Math.floor(this.hover[1] * this.map.height);
      this.readout.textContent = `(${x}, ${y}): ${formatValue(this.map.values[y * this.map.width + x])}`;
    } else this.readout.textContent = "";
    this.draw();
  }

  /** The keyboard's hover: arrows move the probe one map pixel (Shift: 4), Escape hides it; the grid's own
   * arrow-key navigation waits while a map has the focus. */
  private probeKey(e: KeyboardEvent): void {
    const move = PROBE_KEYS[e.key];
    if (e.key === "Escape") this.opts.onHover(null, null);
    else if (!move) return;
    else {
      const w = this.map?.width ?? 16;
      const ht = this.map?.height ?? 16;
      const step = e.shiftKey ? 4 : 1;
      const [x, y] = this.hover ? [Math.floor(this.hover[0] * w), Math.floor(this.hover[1] * ht)] : [Math.floor(w / 2) - move[0] * step, Math.floor(ht / 2) - move[1] * step];
      const nx = Math.min(w - 1, Math.max(0, x + move[0] * step));
      const ny = Math.min(ht - 1, Math.max(0, y + move[1] * step));
      this.opts.onHover((nx + 0.5) / w, (ny + 0.5) / ht);
    }
    e.preventDefault();
    e.stopPropagation();
  }

  private setState(state: "loading" | "ready" | "error"): void {
    this.state = state;
    this.el.dataset.state = state;
  }

  /** Image, then the map at the chosen opacity, then the hovered map pixel outlined. */
  private draw(): void {
    const ctx = this.canvas.getContext("2d");
    if (!ctx) return;
    const { width, height } = this.canvas;
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, width, height);
    if (this.opts.image.complete && this.opts.image.naturalWidth) ctx.drawImage(this.opts.image, 0, 0, width, height);
    if (this.mapCanvas) {
      ctx.globalAlpha = this.opts.opacity;
      ctx.drawImage(this.mapCanvas, 0, 0, width, height);
      ctx.globalAlpha = 1;
    }
    if (this.hover && this.map) {
      const cw = width / this.map.width;
      const ch = height / this.map.height;
      ctx.strokeStyle = cssColor("--xai-accent", this.el) || "#f57c00";
      ctx.lineWidth = 1.5;
      ctx.strokeRect(Math.floor(this.hover[0] * this.map.width) * cw, Math.floor(this.hover[1] * this.map.height) * ch, cw, ch);
    }
  }
}
