// The suggestion panel: which samples are worth a look. A scatter for several models, a histogram
// for one; filters; hover preview; click / brush send samples to the grid; the selection as CSV.
import type { Filters, HistogramSource } from "../state";
import { applyFilters, lossOfTruth, rowsText, selectionTable } from "../suggest";
import type { ScatterAxis } from "../trust";
import type { SuggestionsResponse } from "../types";
import { h, replaceChildren } from "./dom";
import { HistogramPlot, ScatterPlot } from "./plots";

export interface SuggestionPanelOptions {
  imageUrl: (index: number) => string;
  className: (c: number) => string;
  classCount: () => number;
  onPick: (indices: number[], how: "add" | "replace") => void;
  onFilters: (f: Filters) => void;
  onHistogram: (source: HistogramSource) => void;
  onExportCsv: (header: string[], rows: (string | number)[][]) => void;
  onAxis?: (axis: ScatterAxis) => void;
}

const WIDTH = 560;
const HEIGHT = 340;

export class SuggestionPanel {
  readonly el: HTMLElement;
  private readonly controls: HTMLElement;
  private readonly plotSlot: HTMLElement;
  private readonly tooltip: HTMLElement;
  private readonly selectionSlot: HTMLElement;
  private readonly note: HTMLElement;
  private readonly status: HTMLElement;
  private stats: SuggestionsResponse | null = null;
  private selection: number[] = [];
  private scatter: ScatterPlot | null = null;
  private histogram: HistogramPlot | null = null;
  mode: "scatter" | "histogram" | "none" = "none";
  /** The scatter's y axis (set by the tab before show). */
  axis: ScatterAxis = "classes";

  constructor(private readonly o: SuggestionPanelOptions) {
    this.controls = h("div", { class: "xai-toolbar" });
    this.tooltip = h("div", { class: "xai-tooltip xai-hidden", id: "xai-tooltip" });
    this.plotSlot = h("div", { style: "position:relative" });
    this.note = h("div", { class: "xai-empty" }, "choose a sample set and models to see suggestions");
    this.selectionSlot = h("div", { class: "xai-selection", id: "xai-selection" });
    this.status = h("div", { class: "xai-sr-only", id: "xai-plot-status", "aria-live": "polite" });
    this.el = h(
      "div",
      { class: "xai-panel", id: "xai-suggestions" },
      h("h2", {}, "Suggestions"),
      this.controls,
      this.note,
      this.status,
      h("div", { class: "xai-suggest" }, h("div", { style: "position:relative" }, this.plotSlot, this.tooltip), this.selectionSlot),
    );
  }

  /** Tell the person why there is nothing to plot. */
  message(text: string): void {
    this.stats = null;
    this.mode = "none";
    replaceChildren(this.note, text);
    replaceChildren(this.plotSlot);
    replaceChildren(this.controls);
  }

  /** Say how far the statistics are (rows done of every model's rows), with a button that cancels them. */
  working(done: number, total: number, onCancel: () => void): void {
    this.message("");
    replaceChildren(
      this.note,
      h("span", { id: "xai-suggest-progress", role: "status" }, `computing statistics over the sample set: ${rowsText(done, total)} `),
      h("button", { class: "xai-btn", id: "xai-suggest-cancel", onclick: onCancel }, "Cancel"),
    );
  }

  /** Plot `stats` under `filters`: scatter with two usable models or more, histogram with one. */
  show(stats: SuggestionsResponse, filters: Filters, source: HistogramSource): void {
    this.stats = stats;
    const usable = stats.per_model.filter((m) => m.ok);
    const failed = stats.per_model.filter((m) => !m.ok).map((m) => `${m.run}@${m.step}: ${m.error ?? "failed"}`);
    replaceChildren(this.note, failed.length ? `left out: ${failed.join("; ")}` : "");
    this.note.className = failed.length ? "xai-message" : "xai-empty";
    if (!usable.length) {
      this.message(`no model could be evaluated${failed.length ? ": " + failed.join("; ") : ""}`);
      return;
    }
    const visible = applyFilters(stats, filters);
    replaceChildren(this.controls, ...this.filterControls(stats, filters, source, usable.length, visible.length));
    if (usable.length >= 2) {
      this.mode = "scatter";
      this.histogram = null;
      this.scatter ??= new ScatterPlot(this.plotOptions());
      replaceChildren(this.plotSlot, this.scatter.el);
      this.scatter.setData(stats, visible, this.axis);
      this.scatter.highlight(this.selection);
    } else {
      this.mode = "histogram";
      this.scatter = null;
      this.histogram ??= new HistogramPlot(this.plotOptions());
      replaceChildren(this.plotSlot, this.histogram.el);
      const useActivation = source === "activation" && stats.activation;
      const values = useActivation ? stats.activation!.mean : lossOfTruth(stats);
      const label = useActivation
        ? `mean activation of ${stats.activation!.layer}${stats.activation!.neuron !== null ? `, channel ${stats.activation!.neuron}` : ""}`
        : "1 - p(true label)";
      this.histogram.setData(values, visible, label, useActivation ? null : [0, 1]);
    }
    this.el.dataset.mode = this.mode;
    this.renderSelection();
  }

  /** The plots' callbacks: hover read-out, picks, and what a keyboard user hears. */
  private plotOptions() {
    return {
      width: WIDTH,
      height: HEIGHT,
      onHover: (i: number | null, x: number, y: number) => this.hover(i, x, y),
      onPick: (ix: number[], how: "add" | "replace") => this.pick(ix, how),
      onStatus: (text: string) => (this.status.textContent = text),
    };
  }

  /** Draw the plot again in the current theme's colours. */
  redraw(): void {
    this.scatter?.draw();
    this.histogram?.redraw();
  }

  /** The plot shown now (for tests and benches). */
  get plot(): ScatterPlot | HistogramPlot | null {
    return this.scatter ?? this.histogram;
  }

  private filterControls(stats: SuggestionsResponse, f: Filters, source: HistogramSource, models: number, shown: number): HTMLElement[] {
    const labelled = stats.labels !== null;
    const set = (patch: Partial<Filters>) => this.o.onFilters({ ...f, ...patch });
    const classSelect = (id: string, value: number | null, on: (v: number | null) => void) =>
      h(
        "select",
        { id, onchange: (e) => on((e.target as HTMLSelectElement).value === "" ? null : +(e.target as HTMLSelectElement).value) },
        h("option", { value: "" }, "any"),
        ...Array.from({ length: this.o.classCount() }, (_, c) => h("option", { value: c, selected: value === c }, this.o.className(c))),
      );
    const out: HTMLElement[] = [
      h("label", { title: labelled ? "" : "the sample set has no labels" }, h("input", { type: "checkbox", id: "xai-f-mis", disabled: !labelled, checked: f.misclassified, onchange: (e) => set({ misclassified: (e.target as HTMLInputElement).checked }) }), " only misclassified"),
      h("label", {}, "true class ", classSelect("xai-f-true", f.trueClass, (v) => set({ trueClass: v }))),
      h("label", {}, "predicted ", classSelect("xai-f-pred", f.predictedClass, (v) => set({ predictedClass: v }))),
      h(
        "label",
        {},
        "most confident mistakes ",
        h("input", {
          type: "number",
          id: "xai-f-top",
          min: 1,
          placeholder: "k",
          disabled: !labelled,
          style: "width:60px",
          value: f.topMistakes ?? "",
          onchange: (e) => {
            const v = Math.floor(+(e.target as HTMLInputElement).value);
            set({ topMistakes: v > 0 ? v : null });
          },
        }),
      ),
      h("span", { class: "xai-empty", id: "xai-shown" }, `${shown} of ${stats.count} samples shown`),
    ];
    if (models >= 2) out.push(...this.axisControls(stats));
    if (models === 1)
      out.push(
        h(
          "label",
          {},
          "histogram of ",
          h(
            "select",
            { id: "xai-hist-source", onchange: (e) => this.o.onHistogram((e.target as HTMLSelectElement).value as HistogramSource) },
            h("option", { value: "p_true", selected: source === "p_true" }, "1 - p(true label)"),
            h("option", { value: "activation", selected: source === "activation" }, "layer mean activation"),
          ),
        ),
      );
    return out;
  }

  /** The scatter's y-axis choice, and on the evidence axis which samples it covers. */
  private axisControls(stats: SuggestionsResponse): HTMLElement[] {
    const select = h(
      "select",
      { id: "xai-scatter-axis", onchange: (e) => this.o.onAxis?.((e.target as HTMLSelectElement).value as ScatterAxis) },
      h("option", { value: "classes", selected: this.axis === "classes" }, "distinct predicted classes"),
      h("option", { value: "evidence", selected: this.axis === "evidence" }, "agree on the label, not on the evidence"),
    );
    const e = stats.evidence;
    const note =
      this.axis === "evidence" && e
        ? h("span", { class: "xai-empty", id: "xai-evidence-note" }, `${e.method} maps of ${e.covered} of the ${e.agreeing} samples all models predict alike (evenly spaced, at most ${e.max_samples})`)
        : null;
    return [h("label", { title: "the scatter's vertical axis" }, "y axis ", select), ...(note ? [note] : [])];
  }

  private hover(index: number | null, x: number, y: number): void {
    if (index === null || !this.stats) {
      this.tooltip.classList.add("xai-hidden");
      return;
    }
    const s = this.stats;
    const label = s.labels && s.labels[index] >= 0 ? this.o.className(s.labels[index]) : "no label";
    const lines = s.per_model
      .filter((m) => m.ok && m.predicted)
      .map((m) => h("div", {}, `${m.run}@${m.step}: ${this.o.className(m.predicted![index])} (${(m.top_score?.[index] ?? NaN).toFixed(2)})`));
    replaceChildren(this.tooltip, h("img", { src: this.o.imageUrl(index), alt: `sample ${index}` }), h("div", {}, h("b", {}, `#${index}`), ` true: ${label}`), ...lines);
    this.tooltip.style.left = `${Math.min(x + 12, WIDTH - 150)}px`;
    this.tooltip.style.top = `${Math.max(0, y - 40)}px`;
    this.tooltip.classList.remove("xai-hidden");
    if (this.plot?.el.contains(document.activeElement)) this.status.textContent = [`sample #${index}, true: ${label}`, ...lines.map((l) => l.textContent)].join("; ");
  }

  private pick(indices: number[], how: "add" | "replace"): void {
    this.selection = how === "add" ? [...new Set([...this.selection, ...indices])] : indices;
    this.scatter?.highlight(this.selection);
    this.renderSelection();
    if (indices.length) this.o.onPick(indices, how);
  }

  private renderSelection(): void {
    if (!this.stats || !this.selection.length) {
      replaceChildren(this.selectionSlot, h("div", { class: "xai-empty" }, "hover a point to preview it; click or brush to send samples to the grid"));
      return;
    }
    const t = selectionTable(this.stats, this.selection, this.o.className);
    const shown = t.rows.slice(0, 200);
    replaceChildren(
      this.selectionSlot,
      h(
        "div",
        { class: "xai-toolbar" },
        h("span", {}, `${this.selection.length} selected`),
        h("button", { class: "xai-btn", id: "xai-selection-csv", onclick: () => this.o.onExportCsv(t.header, t.rows) }, "Export CSV"),
        h("button", { class: "xai-btn", onclick: () => this.pick([], "replace") }, "Clear"),
      ),
      h("table", {}, h("tr", {}, ...t.header.slice(0, 4).map((c) => h("th", {}, c))), ...shown.map((r) => h("tr", {}, ...r.slice(0, 4).map((c) => h("td", {}, String(c)))))),
      t.rows.length > shown.length ? h("div", { class: "xai-empty" }, `… and ${t.rows.length - shown.length} more (in the CSV)`) : null,
    );
  }
}
