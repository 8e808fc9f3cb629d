// A map's faithfulness score under its cell, and the small deletion / insertion curve shown on hover or focus.
import { beatsRandom, curvePath, METRIC_HELP, scoreSentence, scoreText, type SampleScore } from "../trust";
import type { Metric } from "../types";
import { h } from "./dom";

const SVG = "http://www.w3.org/2000/svg";
const W = 120;
const H = 56;

let nextId = 0;

/** An SVG element with attributes. */
function svg<K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number>): SVGElementTagNameMap[K] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/** The curve of the map's order (accent) over the random order's (dashed), p(target) against the fraction changed. */
export function curveChart(metric: Metric, s: SampleScore): SVGSVGElement {
  const chart = svg("svg", { width: W + 8, height: H + 8, viewBox: `-4 -4 ${W + 8} ${H + 8}`, class: "xai-curve", "aria-hidden": "true" });
  chart.append(svg("rect", { x: 0, y: 0, width: W, height: H, class: "xai-curve-frame" }));
  if (s.randomCurve) chart.append(svg("path", { d: curvePath(s.randomCurve, W, H), class: "xai-curve-random" }));
  if (s.curve) chart.append(svg("path", { d: curvePath(s.curve, W, H), class: "xai-curve-map", "data-metric": metric }));
  return chart;
}

/** The score line: text with a ✓ / ✗ against random; hovering or focusing it shows the curves. */
export function scoreView(metric: Metric, s: SampleScore): HTMLElement {
  const id = `xai-curve-${nextId++}`;
  const good = beatsRandom(s);
  const popup = h(
    "div",
    { class: "xai-curve-popup xai-hidden", id },
    h("div", {}, `p(target) as pixels change: this map's order (solid) vs random (dashed)`),
    curveChart(metric, s),
  );
  const line = h(
    "div",
    {
      class: `xai-score ${good ? "xai-score-good" : "xai-score-bad"}`,
      tabindex: 0,
      "data-metric": metric,
      "data-auc": s.auc,
      "data-random": s.random,
      title: METRIC_HELP[metric],
      "aria-label": scoreSentence(metric, s),
    },
    h("span", { "aria-hidden": "true" }, `${good ? "✓" : "✗"} `),
    scoreText(metric, s),
  );
  const show = () => popup.classList.remove("xai-hidden");
  const hide = () => popup.classList.add("xai-hidden");
  line.addEventListener("mouseenter", show);
  line.addEventListener("mouseleave", () => line !== document.activeElement && hide());
  line.addEventListener("focus", show);
  line.addEventListener("blur", hide);
  line.addEventListener("keydown", (e) => e.key === "Escape" && hide());
  return h("div", { class: "xai-score-wrap" }, line, popup);
}
