// The grid's toolbar: navigation, opacity, zoom, colour range, exports, refresh.
import { SCALE_CHOICES, type ScaleChoice } from "../heatmap";
import type { ViewState } from "../state";
import { h } from "./dom";

export interface ToolbarActions {
  step: (delta: number) => void;
  update: (patch: Partial<ViewState>) => void;
  exportPng: () => void;
  exportNpz: () => void;
  exportCsv: () => void;
  refresh: () => void;
}

const ZOOMS = [0.5, 1, 1.5, 2, 3, 4];

const SCALE_LABELS: Record<ScaleChoice, string> = {
  own: "each map's own range",
  row: "one range per row",
  column: "one range per column",
  method: "one range per method",
  grid: "one range for the grid",
};

/** The toolbar's controls for state `s` over a sample set of `count` samples. */
export function gridToolbar(s: ViewState, count: number, a: ToolbarActions): HTMLElement[] {
  const value = (e: Event) => (e.target as HTMLInputElement | HTMLSelectElement).value;
  return [
    h("button", { class: "xai-btn", id: "xai-prev", title: "previous sample (←)", "aria-label": "previous sample", onclick: () => a.step(-1) }, "◀"),
    h("span", { id: "xai-rows", "aria-live": "polite" }, `sample${s.rows.length > 1 ? "s" : ""} ${s.rows.join(", ")} of ${count}`),
    h("button", { class: "xai-btn", id: "xai-next", title: "next sample (→)", "aria-label": "next sample", onclick: () => a.step(1) }, "▶"),
    h("label", {}, "opacity ", h("input", { id: "xai-opacity", type: "range", min: 0, max: 1, step: 0.05, value: s.opacity, oninput: (e) => a.update({ opacity: +value(e) }) })),
    h(
      "label",
      {},
      "zoom ",
      h("select", { id: "xai-zoom", onchange: (e) => a.update({ zoom: +value(e) }) }, ...ZOOMS.map((z) => h("option", { value: z, selected: z === s.zoom }, `${z}x`))),
    ),
    h(
      "label",
      { title: "colour ranges: each map's own, or one shared range to compare magnitudes" },
      "colours ",
      h(
        "select",
        { id: "xai-scale", onchange: (e) => a.update({ scale: value(e) as ViewState["scale"] }) },
        ...SCALE_CHOICES.map((c) => h("option", { value: c, selected: s.scale === c }, SCALE_LABELS[c])),
      ),
    ),
    h("button", { class: "xai-btn", id: "xai-export-png", onclick: a.exportPng }, "PNG"),
    h("button", { class: "xai-btn", id: "xai-export-npz", onclick: a.exportNpz }, "Maps .npz"),
    h("button", { class: "xai-btn", id: "xai-export-csv", onclick: a.exportCsv }, "Predictions CSV"),
    h("button", { class: "xai-btn", id: "xai-refresh", title: "reload the logdir's listing and compute again what failed or was cancelled", onclick: a.refresh }, "Refresh"),
  ];
}
