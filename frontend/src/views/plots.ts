// The suggestion panel's two plots on canvas: a scatter for several models, a histogram for one.
// Points are drawn in batches per colour; hover goes through a d3 quadtree; d3-brush selects.
import { axisBottom, axisLeft } from "d3-axis";
import { brush, brushX, type BrushBehavior, type D3BrushEvent } from "d3-brush";
import type { Quadtree } from "d3-quadtree";
import { scaleLinear, type ScaleLinear } from "d3-scale";
import { pointer, select, type Selection } from "d3-selection";
import { buildQuadtree, extent, growRect, histogram, hitTest, jitter, nextPoint, normalRect, pointsInRect, verdict, type Bin, type Point } from "../suggest";
import { cssColor } from "../theme";
import { evidenceCovered, type ScatterAxis } from "../trust";
import type { SuggestionsResponse } from "../types";
import { h } from "./dom";

const SVG = "http://www.w3.org/2000/svg";
/** Point colours: the theme's variables (light defaults until the stylesheet is there). */
const COLORS = { right: ["--xai-good", "#2e7d32"], wrong: ["--xai-bad", "#c62828"], unknown: ["--xai-muted", "#616161"] } as const;
const themed = (el: Element, [name, fallback]: readonly [string, string]) => cssColor(name, el) || fallback;
/** Keyboard directions of the arrow keys. */
const ARROWS: Record<string, [number, number]> = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
/** One Shift+arrow grows a keyboard brush by this fraction of the plot. */
const BRUSH_STEP = 0.05;

type BrushGroup = Selection<SVGGElement, unknown, null, undefined>;
const MARGIN = { top: 12, right: 12, bottom: 34, left: 44 };

export interface PlotOptions {
  width: number;
  height: number;
  onHover: (index: number | null, x: number, y: number) => void; // x, y: pointer in plot pixels
  onPick: (indices: number[], how: "add" | "replace") => void;
  onStatus: (text: string) => void; // what a keyboard user should hear after a key
}

/** A canvas under an SVG (axes, labels, brush) in one positioned box. */
function frame(width: number, height: number, id: string, label: string) {
  const canvas = h("canvas", { width, height, "aria-hidden": "true" });
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", String(height));
  svg.setAttribute("aria-hidden", "true");
  const el = h("div", { class: "xai-plot", id, style: `width:${width}px;height:${height}px`, tabindex: 0, role: "application", "aria-label": label }, canvas);
  el.appendChild(svg);
  return { el, canvas, svg };
}

export class ScatterPlot {
  readonly el: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  private readonly svg: SVGSVGElement;
  private x: ScaleLinear<number, number>;
  private y: ScaleLinear<number, number>;
  private points: Point[] = [];
  private tree: Quadtree<Point> | null = null;
  private stats: SuggestionsResponse | null = null;
  private highlighted = new Set<number>();
  private cursor: Point | null = null;
  private keyRect: [number, number, number, number] | null = null;
  private brushBehavior: BrushBehavior<unknown> | null = null;
  private brushGroup: BrushGroup | null = null;

  constructor(private readonly o: PlotOptions) {
    const f = frame(
      o.width,
      o.height,
      "xai-scatter",
      "Suggestion scatter. Arrow keys move between points and show one; Enter adds it to the grid. Shift with arrow keys draws a selection rectangle; Enter sends its samples to the grid; Escape clears.",
    );
    this.el = f.el;
    this.canvas = f.canvas;
    this.svg = f.svg;
    this.x = scaleLinear().domain([0, 1]).range([MARGIN.left, o.width - MARGIN.right]);
    this.y = scaleLinear().domain([0.5, 2.5]).range([o.height - MARGIN.bottom, MARGIN.top]);
    this.svg.addEventListener("mousemove", (e) => {
      const [px, py] = pointer(e, this.svg);
      const hit = this.tree ? hitTest(this.tree, px, py, 6) : undefined;
      o.onHover(hit ? hit.index : null, px, py);
    });
    this.svg.addEventListener("mouseleave", () => o.onHover(null, 0, 0));
    this.el.addEventListener("keydown", (e) => this.key(e));
  }

  /** Keyboard: arrows move a cursor over the points (its read-out as on hover), Enter picks it; Shift+arrows
   * draw a rectangle from the cursor, Enter sends its points; Escape clears both. */
  private key(e: KeyboardEvent): void {
    const dir = ARROWS[e.key];
    const { width, height } = this.o;
    const bounds: [number, number, number, number] = [MARGIN.left, MARGIN.top, width - MARGIN.right, height - MARGIN.bottom];
    if (dir && e.shiftKey) {
      const start = this.keyRect ?? (this.cursor ? [this.cursor.x, this.cursor.y, this.cursor.x, this.cursor.y] : [width / 2, height / 2, width / 2, height / 2]);
      this.keyRect = growRect(start as [number, number, number, number], dir[0] * BRUSH_STEP * (bounds[2] - bounds[0]), dir[1] * BRUSH_STEP * (bounds[3] - bounds[1]), bounds);
      const [x0, y0, x1, y1] = normalRect(this.keyRect);
      this.brushGroup?.call(this.brushBehavior!.move, [[x0, y0], [x1, y1]]);
      const n = this.tree ? pointsInRect(this.tree, x0, y0, x1, y1).length : 0;
      this.o.onStatus(`${n} sample${n === 1 ? "" : "s"} in the rectangle; Enter sends them to the grid`);
    } else if (dir) {
      this.cursor = nextPoint(this.points, this.cursor, dir[0], dir[1], width / 2, height / 2);
      this.draw();
      if (this.cursor) this.o.onHover(this.cursor.index, this.cursor.x, this.cursor.y);
    } else if (e.key === "Enter" || e.key === " ") {
      if (this.keyRect && this.tree) {
        const [x0, y0, x1, y1] = normalRect(this.keyRect);
        this.o.onPick(pointsInRect(this.tree, x0, y0, x1, y1), "replace");
        this.clearKeyRect();
      } else if (this.cursor) this.o.onPick([this.cursor.index], "add");
    } else if (e.key === "Escape") {
      this.clearKeyRect();
      this.cursor = null;
      this.draw();
      this.o.onHover(null, 0, 0);
    } else return;
    e.preventDefault();
    e.stopPropagation();
  }

  private clearKeyRect(): void {
    this.keyRect = null;
    this.brushGroup?.call(this.brushBehavior!.move, null);
  }

  /** Show `visible` samples of `stats`: x = mean top score, y = distinct predicted classes (jittered), or on the
   * evidence axis the models' evidence disagreement (only the samples it covers). */
  setData(stats: SuggestionsResponse, visible: number[], axis: ScatterAxis = "classes"): number {
    this.stats = stats;
    const maxDistinct = Math.max(2, ...stats.per_sample.distinct_classes.slice(0, 100000));
    this.y.domain([0.5, maxDistinct + 0.5]);
    const mts = stats.per_sample.mean_top_score;
    const dc = stats.per_sample.distinct_classes;
    this.points = visible.map((i) => ({ index: i, x: this.x(mts[i]), y: this.y(dc[i] + jitter(i, 0.3)) }));
    if (axis === "evidence") {
      const e = stats.per_sample.evidence_disagreement ?? [];
      const covered = evidenceCovered(e, visible);
      this.y.domain([0, Math.max(1, ...covered.map((i) => e[i]!))]);
      this.points = covered.map((i) => ({ index: i, x: this.x(mts[i]), y: this.y(e[i]!) }));
    }
    this.cursor = this.cursor ? (this.points.find((p) => p.index === this.cursor!.index) ?? null) : null;
    this.keyRect = null;
    this.tree = buildQuadtree(this.points);
    this.decorate(maxDistinct, axis);
    return this.draw();
  }

  /** Mark these samples (the selection) with a ring. */
  highlight(indices: number[]): void {
    this.highlighted = new Set(indices);
    this.draw();
  }

  /** Paint every point, one fill colour at a time; returns the milliseconds it took. */
  draw(): number {
    const t0 = performance.now();
    const ctx = this.canvas.getContext("2d")!;
    ctx.clearRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.stats) return 0;
    const stats = this.stats;
    const groups: Record<keyof typeof COLORS, Point[]> = { right: [], wrong: [], unknown: [] };
    for (const p of this.points) groups[verdict(stats, p.index)].push(p);
    const many = this.points.length > 5000;
    const r = many ? 1.5 : 2.5;
    ctx.globalAlpha = many ? 0.5 : 0.8;
    for (const key of Object.keys(groups) as (keyof typeof COLORS)[]) {
      ctx.fillStyle = themed(this.el, COLORS[key]);
      for (const p of groups[key]) ctx.fillRect(p.x - r, p.y - r, 2 * r, 2 * r);
    }
    ctx.globalAlpha = 1;
    if (this.highlighted.size) {
      ctx.strokeStyle = themed(this.el, ["--xai-accent", "#f57c00"]);
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      for (const p of this.points)
        if (this.highlighted.has(p.index)) {
          ctx.moveTo(p.x + 4, p.y);
          ctx.arc(p.x, p.y, 4, 0, 2 * Math.PI);
        }
      ctx.stroke();
    }
    if (this.cursor) {
      ctx.strokeStyle = themed(this.el, ["--xai-focus", "#1a73e8"]);
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(this.cursor.x, this.cursor.y, 7, 0, 2 * Math.PI);
      ctx.stroke();
    }
    return performance.now() - t0;
  }

  /** Every shown point's plot position (tests and benches read it). */
  positions(): Point[] {
    return this.points.slice();
  }

  /** Axes, quadrant lines and labels, and the brush, redrawn into the SVG. */
  private decorate(maxDistinct: number, axis: ScatterAxis): void {
    const evidence = axis === "evidence";
    const { width, height } = this.o;
    const svg = select(this.svg);
    svg.selectAll("*").remove();
    svg.append("g").attr("transform", `translate(0,${height - MARGIN.bottom})`).call(axisBottom(this.x).ticks(5));
    svg
      .append("g")
      .attr("transform", `translate(${MARGIN.left},0)`)
      .call(evidence ? axisLeft(this.y).ticks(5) : axisLeft(this.y).tickValues(Array.from({ length: maxDistinct }, (_, k) => k + 1)).tickFormat((v) => String(v)));
    svg.append("text").attr("x", width / 2).attr("y", height - 4).attr("text-anchor", "middle").attr("font-size", 11).text("mean top score across models");
    svg
      .append("text")
      .attr("transform", `translate(12,${height / 2}) rotate(-90)`)
      .attr("text-anchor", "middle")
      .attr("font-size", 11)
      .text(evidence ? "evidence disagreement (1 - mean ρ of maps)" : "distinct predicted classes");
    const midX = this.x(0.5);
    const midY = this.y(evidence ? 0.5 : 1.5);
    const guide = svg.append("g").attr("class", "xai-guide").attr("stroke-dasharray", "3,3");
    guide.append("line").attr("x1", midX).attr("x2", midX).attr("y1", MARGIN.top).attr("y2", height - MARGIN.bottom);
    guide.append("line").attr("x1", MARGIN.left).attr("x2", width - MARGIN.right).attr("y1", midY).attr("y2", midY);
    const [high, low] = evidence ? ["same label, other evidence", "same label, same evidence"] : ["models disagree", "models agree"];
    const labels: [number, number, string, string][] = [
      [MARGIN.left + 4, MARGIN.top + 10, "start", `unsure · ${high}`],
      [width - MARGIN.right - 4, MARGIN.top + 10, "end", `confident · ${high}`],
      [MARGIN.left + 4, height - MARGIN.bottom - 6, "start", `unsure · ${low}`],
      [width - MARGIN.right - 4, height - MARGIN.bottom - 6, "end", `confident · ${low}`],
    ];
    for (const [x, y, anchor, text] of labels)
      svg
        .append("text")
        .attr("class", "xai-quadrant")
        .attr("x", x)
        .attr("y", y)
        .attr("text-anchor", anchor)
        .attr("font-size", 11)
        .attr("font-weight", 500)
        .attr("stroke-width", 3)
        .attr("paint-order", "stroke")
        .text(text);
    const b = brush<unknown>()
      .extent([
        [MARGIN.left, MARGIN.top],
        [width - MARGIN.right, height - MARGIN.bottom],
      ])
      .on("end", (e: D3BrushEvent<unknown>) => this.brushed(e));
    this.brushBehavior = b;
    this.brushGroup = svg.append("g").attr("class", "xai-brush").call(b);
  }

  /** A brushed rectangle picks its points; a click without a drag picks the nearest point. */
  private brushed(e: D3BrushEvent<unknown>): void {
    if (!e.sourceEvent || !this.tree) return;
    if (e.selection) {
      const [[x0, y0], [x1, y1]] = e.selection as [[number, number], [number, number]];
      this.o.onPick(pointsInRect(this.tree, x0, y0, x1, y1), "replace");
      return;
    }
    const [px, py] = pointer(e.sourceEvent, this.svg);
    const hit = hitTest(this.tree, px, py, 6);
    if (hit) this.o.onPick([hit.index], "add");
  }
}

export class HistogramPlot {
  readonly el: HTMLElement;
  readonly canvas: HTMLCanvasElement;
  private readonly svg: SVGSVGElement;
  private x: ScaleLinear<number, number> = scaleLinear();
  private bins: Bin[] = [];
  private last: Parameters<HistogramPlot["setData"]> | null = null;
  private cursor: number | null = null; // a bin's position in this.bins
  private keyRange: [number, number] | null = null; // bins from the cursor to the range's moving end
  private brushBehavior: BrushBehavior<unknown> | null = null;
  private brushGroup: BrushGroup | null = null;

  constructor(private readonly o: PlotOptions) {
    const f = frame(
      o.width,
      o.height,
      "xai-histogram",
      "Suggestion histogram. Left and right arrow keys move between bars and show one; Enter sends its samples to the grid. Shift with arrow keys selects a range of bars; Enter sends them; Escape clears.",
    );
    this.el = f.el;
    this.canvas = f.canvas;
    this.svg = f.svg;
    this.svg.addEventListener("mousemove", (e) => {
      const [px, py] = pointer(e, this.svg);
      const bin = this.binAt(px);
      o.onHover(bin && bin.indices.length ? bin.indices[0] : null, px, py);
    });
    this.svg.addEventListener("mouseleave", () => o.onHover(null, 0, 0));
    this.el.addEventListener("keydown", (e) => this.key(e));
  }

  /** Keyboard: left / right move over the non-empty bars (read-out as on hover), Enter sends the bar's samples;
   * Shift+left / right extend a range of bars from the cursor, Enter sends them; Escape clears. */
  private key(e: KeyboardEvent): void {
    const filled = this.bins.flatMap((b, k) => (b.indices.length ? [k] : []));
    const dir = e.key === "ArrowLeft" ? -1 : e.key === "ArrowRight" ? 1 : 0;
    const move = (from: number | null) => {
      if (from === null) return filled[0] ?? null;
      const ahead = filled.filter((k) => (dir > 0 ? k > from : k < from));
      return ahead.length ? (dir > 0 ? ahead[0] : ahead[ahead.length - 1]) : from;
    };
    if (dir && e.shiftKey) {
      const anchor = this.keyRange?.[0] ?? this.cursor ?? filled[0];
      if (anchor === undefined) return;
      const end = move(this.keyRange?.[1] ?? anchor)!;
      this.keyRange = [anchor, end];
      const [a, b] = [Math.min(anchor, end), Math.max(anchor, end)];
      this.brushGroup?.call(this.brushBehavior!.move, [this.x(this.bins[a].x0), this.x(this.bins[b].x1)]);
      const chosen = this.bins.slice(a, b + 1).filter((bin) => bin.indices.length);
      const n = chosen.reduce((t, bin) => t + bin.indices.length, 0);
      this.o.onStatus(`${chosen.length} bars, ${n} samples selected; Enter sends them to the grid`);
    } else if (dir) {
      this.cursor = move(this.cursor);
      if (this.cursor !== null) {
        const bin = this.bins[this.cursor];
        this.o.onHover(bin.indices[0], this.x((bin.x0 + bin.x1) / 2), this.o.height - MARGIN.bottom - 20);
        this.o.onStatus(`bar ${formatBin(bin)}: ${bin.indices.length} samples`);
      }
    } else if (e.key === "Enter" || e.key === " ") {
      const [a, b] = this.keyRange ? [Math.min(...this.keyRange), Math.max(...this.keyRange)] : this.cursor !== null ? [this.cursor, this.cursor] : [-1, -2];
      const picked = this.bins.slice(Math.max(a, 0), b + 1).flatMap((bin) => bin.indices).sort((i, j) => i - j);
      if (picked.length) this.o.onPick(picked, "replace");
      this.keyRange = null;
      this.brushGroup?.call(this.brushBehavior!.move, null);
    } else if (e.key === "Escape") {
      this.keyRange = null;
      this.cursor = null;
      this.brushGroup?.call(this.brushBehavior!.move, null);
      this.o.onHover(null, 0, 0);
    } else return;
    e.preventDefault();
    e.stopPropagation();
  }

  /** Draw again with the same data (the theme changed). */
  redraw(): void {
    if (this.last) this.setData(...this.last);
  }

  /** Bars of `values` over the `visible` samples, labelled `xLabel`. */
  setData(values: ArrayLike<number>, visible: number[], xLabel: string, domain: [number, number] | null = null, bins = 20): void {
    if (this.last?.[0] !== values || this.last?.[1] !== visible) [this.cursor, this.keyRange] = [null, null];
    this.last = [values, visible, xLabel, domain, bins];
    const [lo, hi] = domain ?? extent(values, visible);
    this.bins = histogram(values, visible, bins, lo, hi);
    const { width, height } = this.o;
    this.x = scaleLinear().domain([lo, hi]).range([MARGIN.left, width - MARGIN.right]);
    const most = Math.max(1, ...this.bins.map((b) => b.indices.length));
    const y = scaleLinear().domain([0, most]).nice().range([height - MARGIN.bottom, MARGIN.top]);
    const ctx = this.canvas.getContext("2d")!;
    ctx.clearRect(0, 0, width, height);
    ctx.fillStyle = themed(this.el, ["--xai-accent", "#f57c00"]);
    for (const b of this.bins) {
      const x0 = this.x(b.x0) + 1;
      const x1 = this.x(b.x1) - 1;
      ctx.fillRect(x0, y(b.indices.length), Math.max(1, x1 - x0), y(0) - y(b.indices.length));
    }
    const svg = select(this.svg);
    svg.selectAll("*").remove();
    svg.append("g").attr("transform", `translate(0,${height - MARGIN.bottom})`).call(axisBottom(this.x).ticks(6));
    const counts = axisLeft(y)
      .ticks(Math.min(5, most))
      .tickFormat((v) => (Number.isInteger(+v) ? String(v) : ""));
    svg.append("g").attr("transform", `translate(${MARGIN.left},0)`).call(counts);
    svg.append("text").attr("x", width / 2).attr("y", height - 4).attr("text-anchor", "middle").attr("font-size", 11).text(xLabel);
    const b = brushX<unknown>()
      .extent([
        [MARGIN.left, MARGIN.top],
        [width - MARGIN.right, height - MARGIN.bottom],
      ])
      .on("end", (e: D3BrushEvent<unknown>) => this.brushed(e));
    this.brushBehavior = b;
    this.brushGroup = svg.append("g").attr("class", "xai-brush").call(b);
  }

  /** The bin under plot x, if any. */
  private binAt(px: number): Bin | undefined {
    const v = this.x.invert(px);
    return this.bins.find((b, k) => v >= b.x0 && (v < b.x1 || (k === this.bins.length - 1 && v <= b.x1)));
  }

  /** Brushing a range picks the samples of every bar it touches; a click picks the bar's samples. */
  private brushed(e: D3BrushEvent<unknown>): void {
    if (!e.sourceEvent) return;
    if (e.selection) {
      const [a, b] = (e.selection as [number, number]).map((p) => this.x.invert(p));
      const touched = this.bins.filter((bin) => bin.x1 >= a && bin.x0 <= b);
      this.o.onPick(touched.flatMap((bin) => bin.indices).sort((i, j) => i - j), "replace");
      return;
    }
    const [px] = pointer(e.sourceEvent, this.svg);
    const bin = this.binAt(px);
    if (bin && bin.indices.length) this.o.onPick(bin.indices, "replace");
  }

  /** Each non-empty bar: its centre near the axis, in plot pixels, and its samples (tests read it). */
  bars(): { x: number; y: number; indices: number[] }[] {
    return this.bins
      .filter((b) => b.indices.length)
      .map((b) => ({ x: (this.x(b.x0) + this.x(b.x1)) / 2, y: this.o.height - MARGIN.bottom - 2, indices: b.indices.slice() }));
  }
}

/** A bin's value range, short. */
const formatBin = (b: Bin): string => `${+b.x0.toPrecision(3)} to ${+b.x1.toPrecision(3)}`;
