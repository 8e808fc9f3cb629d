// The trust panel ("Which maps to trust"): its switches and score settings, the ranking of methods, the
// sanity check's verdicts and the agreement matrices. Pure DOM from what it is given.
import type { TrustState } from "../state";
import { FILL_LABELS, FILLS, fmt, METRIC_HELP, METRIC_LABELS, METRICS, RANDOM_ROW, SANITY_EXPLANATION, sanitySummary, type Fill, type RankRow } from "../trust";
import type { Metric, SanityCell } from "../types";
import { h, keepFocus, replaceChildren } from "./dom";
import { matrixTable } from "./matrix";

export interface TrustPanelActions {
  update: (patch: Partial<TrustState>) => void;
  agreementSample: (choice: string) => void;
  exportScores: () => void;
}

/** A labelled matrix to draw: its caption, the names of its rows and columns, and its values. */
export interface MatrixData {
  caption: string;
  labels: string[];
  matrix: (number | null)[][];
}

export class TrustPanel {
  readonly el: HTMLElement;
  private readonly controls = h("div", { class: "xai-toolbar", id: "xai-trust-controls" });
  private readonly intro = h(
    "p",
    { class: "xai-empty xai-intro" },
    "Scores, a sanity check and agreement tell which of the maps above follow the model. Each is computed on demand for the grid's models, methods and samples.",
  );
  readonly verdict = h("div", { id: "xai-verdict", class: "xai-verdict xai-hidden", role: "status" });
  readonly ranking = h("section", { id: "xai-ranking", class: "xai-trust-part xai-hidden" });
  readonly sanity = h("section", { id: "xai-sanity", class: "xai-trust-part xai-hidden" });
  readonly agreement = h("section", { id: "xai-agreement", class: "xai-trust-part xai-hidden" });

  constructor(private readonly actions: TrustPanelActions) {
    this.el = h("div", { class: "xai-panel", id: "xai-trust" }, h("h2", {}, "Which maps to trust"), this.controls, this.intro, this.verdict, this.ranking, this.sanity, this.agreement);
  }

  /** Draw the switches and the score settings for `t`, and show the parts that are on. */
  renderControls(t: TrustState): void {
    const check = (id: string, key: "scores" | "sanity" | "agreement", text: string, title: string) =>
      h("label", { title }, h("input", { type: "checkbox", id, checked: t[key], onchange: (e) => this.actions.update({ [key]: (e.target as HTMLInputElement).checked }) }), ` ${text}`);
    const metric = h(
      "select",
      { id: "xai-score-metric", onchange: (e) => this.actions.update({ metric: (e.target as HTMLSelectElement).value as Metric }) },
      ...METRICS.map((m) => h("option", { value: m, selected: t.metric === m, title: METRIC_HELP[m] }, METRIC_LABELS[m])),
    );
    const fill = h(
      "select",
      { id: "xai-score-fill", onchange: (e) => this.actions.update({ fill: (e.target as HTMLSelectElement).value as Fill }) },
      ...FILLS.map((f) => h("option", { value: f, selected: t.fill === f }, FILL_LABELS[f])),
    );
    keepFocus(this.controls, () =>
      replaceChildren(
        this.controls,
        check("xai-trust-scores", "scores", "faithfulness scores", "a score under each map and a ranking of the methods"),
        h("label", {}, "metric ", metric),
        h("label", { title: "what removed pixels are replaced by" }, "fill ", fill),
        check("xai-trust-sanity", "sanity", "sanity check", "randomize the model's weights layer by layer and see whether the maps change"),
        check("xai-trust-agreement", "agreement", "agreement", "rank correlation between the methods' maps and between the models' maps"),
      ),
    );
    this.ranking.classList.toggle("xai-hidden", !t.scores);
    this.sanity.classList.toggle("xai-hidden", !t.sanity);
    this.agreement.classList.toggle("xai-hidden", !t.agreement);
    this.intro.classList.toggle("xai-hidden", t.scores || t.sanity || t.agreement);
  }

  /** A part's state in words (computing, an error, nothing to show). */
  message(part: HTMLElement, title: string, text: string, error = false): void {
    replaceChildren(part, h("h3", {}, title), h("div", { class: error ? "xai-message" : "xai-empty" }, text));
  }

  /** The ranking table: one row per method (and the random order), mean area per metric, rank on `metric`. */
  showRanking(rows: RankRow[], metric: Metric, label: (id: string) => string, what: string, missing: string[], flaggedIds: Set<string> | null): void {
    const better = (m: Metric) => (m === "deletion" || m === "morf" ? "lower is better" : "higher is better");
    const head = h(
      "tr",
      {},
      h("th", { scope: "col" }, "rank"),
      h("th", { scope: "col" }, "method"),
      ...METRICS.map((m) => h("th", { scope: "col", class: m === metric ? "xai-chosen" : null, title: METRIC_HELP[m] }, METRIC_LABELS[m], h("br"), h("span", { class: "xai-sub" }, better(m)))),
      h("th", { scope: "col" }, "maps"),
    );
    const body = rows.map((r) =>
      h(
        "tr",
        { class: r.method === RANDOM_ROW ? "xai-baseline" : null, "data-method": r.method, "data-rank": r.rank ?? "" },
        h("td", {}, r.rank === null ? "–" : String(r.rank)),
        h("th", { scope: "row" }, r.method === RANDOM_ROW ? "random order (baseline)" : label(r.method), flaggedIds?.has(r.method) ? sanityBadge(label(r.method)) : null),
        ...METRICS.map((m) => h("td", { class: m === metric ? "xai-chosen" : null }, r.means[m] === undefined ? "–" : fmt(r.means[m]!))),
        h("td", {}, String(r.count)),
      ),
    );
    replaceChildren(
      this.ranking,
      h("h3", {}, "Ranking of the methods"),
      h(
        "table",
        { class: "xai-rank", id: "xai-rank-table" },
        h("caption", {}, `Mean area ${what}, ranked on ${METRIC_LABELS[metric]} (${better(metric)}). A method ranked below the random order is no better than chance.`),
        h("thead", {}, head),
        h("tbody", {}, ...body),
      ),
      missing.length ? h("div", { class: "xai-message" }, `not scored: ${missing.join("; ")}`) : null,
      h("button", { class: "xai-btn xai-after-table", id: "xai-export-scores", onclick: () => this.actions.exportScores() }, "Scores CSV"),
    );
  }

  /** The panel's verdict sentences (none: hidden). */
  showVerdict(sentences: string[]): void {
    replaceChildren(this.verdict, ...sentences.map((t) => h("p", {}, t)));
    this.verdict.classList.toggle("xai-hidden", !sentences.length);
  }

  /** The sanity check's verdict per (model, method): the correlation left once the top layers, then all, are randomized, and the badge. */
  showSanity(cells: SanityCell[], threshold: number, label: (id: string) => string, flaggedOf: (c: SanityCell) => boolean, randomization?: string): void {
    const how = randomization === "permute" ? " (each layer's weights shuffled)" : randomization === "init" ? " (each layer's weights drawn anew)" : "";
    const rows = cells.map((c) =>
      h(
        "tr",
        { "data-method": c.method, "data-run": c.run, "data-flagged": String(flaggedOf(c)) },
        h("th", { scope: "row" }, `${c.run}@${c.step}`),
        h("td", {}, label(c.method)),
        h("td", { class: c.ok ? null : "xai-error" }, sanitySummary(c, threshold)),
        h("td", {}, flaggedOf(c) ? sanityBadge(label(c.method)) : c.ok ? "changes with the weights" : ""),
      ),
    );
    const anyFlagged = cells.some(flaggedOf);
    replaceChildren(
      this.sanity,
      h("h3", {}, "Sanity check: do the maps depend on the weights?"),
      h(
        "table",
        { class: "xai-rank", id: "xai-sanity-table" },
        h("caption", {}, `Cascading randomization: the model's layers randomized from the output down${how}; ρ is the Spearman rank correlation of the absolute maps with the trained model's, mean over the grid's samples.`),
        h("thead", {}, h("tr", {}, ...["model", "method", "after randomizing the top, then all layers", "verdict"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...rows),
      ),
      anyFlagged ? h("p", { class: "xai-explain", id: "xai-sanity-explain" }, SANITY_EXPLANATION) : null,
    );
  }

  /** The agreement matrices of the chosen sample (or the mean), with the sample picker. */
  showAgreement(choices: { value: string; text: string }[], chosen: string, methods: MatrixData[], models: MatrixData[], notes: string[]): void {
    const picker = h(
      "select",
      { id: "xai-agreement-sample", onchange: (e) => this.actions.agreementSample((e.target as HTMLSelectElement).value) },
      ...choices.map((c) => h("option", { value: c.value, selected: c.value === chosen }, c.text)),
    );
    const group = (title: string, list: MatrixData[], id: string) =>
      list.length ? h("div", { class: "xai-matrices", id }, h("div", { class: "xai-label" }, title), ...list.map((m) => matrixTable(m.caption, m.labels, m.matrix))) : null;
    keepFocus(this.agreement, () =>
      replaceChildren(
        this.agreement,
        h("h3", {}, "Agreement"),
        h("div", { class: "xai-toolbar" }, h("label", {}, "sample ", picker), h("span", { class: "xai-empty" }, "Spearman ρ between maps: 1 the same ranking of pixels, 0 unrelated, -1 reversed.")),
        group("between methods, per model", methods, "xai-agreement-methods"),
        group("between models, per method", models, "xai-agreement-models"),
        ...notes.map((n) => h("div", { class: "xai-empty" }, n)),
      ),
    );
  }
}

/** The badge on a method whose maps survive randomizing the model, with the explanation as its description. */
export function sanityBadge(method: string): HTMLElement {
  return h(
    "span",
    { class: "xai-badge", title: SANITY_EXPLANATION, "aria-label": `${method} barely depends on the weights here: ${SANITY_EXPLANATION}`, role: "note" },
    "⚠ barely depends on the weights",
  );
}
