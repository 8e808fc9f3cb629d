// A colour bar with its value axis: what the map's colours mean.
import { axisBottom } from "d3-axis";
import { scaleLinear } from "d3-scale";
import { select } from "d3-selection";
import { paletteColor, type Palette } from "../heatmap";
import { h } from "./dom";

const WIDTH = 110;
const PAD = 18;

/** A legend for `palette` over `domain` (canvas gradient plus a 3-tick d3 axis). */
export function legend(palette: Palette, domain: [number, number]): HTMLElement {
  const bar = h("canvas", { width: WIDTH, height: 8, class: "xai-legend-bar" }) as HTMLCanvasElement;
  const ctx = bar.getContext("2d");
  if (ctx) {
    for (let x = 0; x < WIDTH; x++) {
      ctx.fillStyle = paletteColor(palette, x / (WIDTH - 1));
      ctx.fillRect(x, 0, 1, 8);
    }
  }
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", String(WIDTH + 2 * PAD));
  svg.setAttribute("height", "16");
  const scale = scaleLinear().domain(domain).range([0, WIDTH - 1]);
  const ticks = palette === "diverging" ? [domain[0], 0, domain[1]] : [domain[0], domain[1]];
  select(svg)
    .append("g")
    .attr("transform", `translate(${PAD},0)`)
    .call(axisBottom(scale).tickValues(ticks).tickSize(3).tickFormat((v) => formatValue(+v)))
    .attr("font-size", 9);
  const wrap = h("div", { class: "xai-legend", title: `${palette} colormap, values ${formatValue(domain[0])} to ${formatValue(domain[1])}` });
  bar.style.cssText = `margin-left:${PAD}px;width:${WIDTH}px;height:8px`;
  wrap.append(bar, svg);
  return wrap;
}

/** A short, readable number: 3 significant digits, exponent form when tiny or huge. */
export function formatValue(v: number): string {
  if (v === 0 || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(1) : String(+v.toPrecision(3));
}
