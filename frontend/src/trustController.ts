// Wiring of the trust panel: the grid's columns and rows -> score, sanity and agreement requests -> the
// score lines under the maps, the ranking, the badges in the column titles and the matrices. Answers for a
// selection that changed meanwhile are dropped.
import { download } from "./export";
import { scoresCsv } from "./gridExport";
import { messageOf, type DataModel, type MapQuery, type Versions } from "./model";
import type { ViewState } from "./state";
import { DEFAULT_SANITY_THRESHOLD, firstLastText, flagged, METRIC_LABELS, rankMethods, verdict, type RankRow, type SampleScores, type ScoredMap, type ScoreOptions } from "./trust";
import { TrustData, type GroupQuery } from "./trustModel";
import type { AgreementResponse, Metric, ModelRef, SanityResponse } from "./types";
import { h } from "./views/dom";
import { cellKey, type Column, type GridView } from "./views/grid";
import { scoreView } from "./views/score";
import { sanityBadge, TrustPanel, type MatrixData } from "./views/trust";

/** What the controller reads from the tab. */
export interface TrustHost {
  state: () => ViewState;
  grid: () => GridView | null;
  columns: () => Column[];
  query: (c: Column) => MapQuery;
  methodLabel: (id: string) => string;
  update: (patch: Partial<ViewState>) => void;
  checkpoints: (run: string) => ModelRef[];
}

const MEAN = "mean";
/** The sanity route's most samples. */
const SANITY_ROWS = 16;
const STEPS = 16;
const REGION = 4;

export class TrustController {
  readonly panel: TrustPanel;
  readonly data: TrustData;
  private generation = 0;
  private agreementChoice = MEAN;
  private lastAgreement: AgreementResponse | null = null;
  /** What the verdict is made of: the last ranking drawn, and the methods the sanity check flagged (null: not run). */
  private ranked: { rows: RankRow[]; metric: Metric; what: string; missing: string[] } | null = null;
  private flaggedIds: Set<string> | null = null;
  /** The over-training panel's line: how much each method's maps changed from the run's first to last checkpoint. */
  readonly firstLastEl = h("div", { id: "xai-first-last", class: "xai-first-last" });
  private timelineRun: string | null = null;
  private firstLastGeneration = 0;

  constructor(
    private readonly host: TrustHost,
    model: DataModel,
    versions: Versions,
  ) {
    this.data = new TrustData(model, versions);
    this.panel = new TrustPanel({
      update: (patch) => host.update({ trust: { ...host.state().trust, ...patch } }),
      exportScores: () => download("xai-scores.csv", scoresCsv(host.columns(), host.state().rows, (c, i) => this.scoresOf(c, i)), "text/csv"),
      agreementSample: (choice) => {
        this.agreementChoice = choice;
        if (this.lastAgreement) this.drawAgreement(this.lastAgreement);
      },
    });
  }

  /** The score settings in force. */
  options(): ScoreOptions {
    return { fill: this.host.state().trust.fill, steps: STEPS, region: REGION };
  }

  /** Draw the panel's switches and (re)fill every part that is on, for the grid shown now. */
  refresh(): void {
    const s = this.host.state();
    const gen = ++this.generation;
    this.panel.renderControls(s.trust);
    const grid = this.host.grid();
    const columns = this.host.columns();
    if (!grid || !s.samples || !columns.length) {
      for (const [part, title] of [[this.panel.ranking, "Ranking of the methods"], [this.panel.sanity, "Sanity check"], [this.panel.agreement, "Agreement"]] as const)
        this.panel.message(part, title, "Choose a sample set, a model and a method.");
      return;
    }
    const current = () => this.generation === gen;
    this.ranked = null;
    this.flaggedIds = null;
    this.panel.showVerdict([]);
    if (s.trust.scores) void this.fillScores(grid, columns, s.rows, current);
    else grid.forEach((c) => c.setScore(null));
    if (s.trust.sanity) void this.fillSanity(grid, columns, current);
    else columns.forEach((c) => grid.setBadge(c, null));
    if (s.trust.agreement) void this.fillAgreement(current);
    void this.fillFirstLast();
  }

  /** The run the over-training panel shows: its first-vs-last line follows. */
  setTimelineRun(run: string | null): void {
    if (run === this.timelineRun) return;
    this.timelineRun = run;
    void this.fillFirstLast();
  }

  /** With the sanity check on: the rank correlation of every chosen method's maps between the first and the last
   * checkpoint of the over-training run, on the grid's samples. */
  private async fillFirstLast(): Promise<void> {
    const s = this.host.state();
    const gen = ++this.firstLastGeneration;
    const el = this.firstLastEl;
    if (!this.timelineRun || !s.samples || !s.methods.length) {
      el.replaceChildren();
      return;
    }
    if (!s.trust.sanity) {
      el.replaceChildren(h("div", { class: "xai-empty" }, "Turn on the sanity check (Which maps to trust) to see how much each method's maps changed from the first to the last checkpoint."));
      return;
    }
    el.replaceChildren(h("div", { class: "xai-empty" }, "comparing the first and the last checkpoint…"));
    const g = { ...this.group(), models: this.host.checkpoints(this.timelineRun) };
    try {
      const answer = await this.data.firstLast(this.timelineRun, g);
      if (gen !== this.firstLastGeneration) return;
      el.replaceChildren(
        h("div", { class: "xai-label" }, "first vs last checkpoint (Spearman ρ of |map|, mean over the grid's samples)"),
        ...answer.cells.map((c) => h("div", { class: c.ok ? null : "xai-error", "data-method": c.method, "data-mean": c.mean ?? "" }, firstLastText(c, this.host.methodLabel(c.method)))),
      );
    } catch (e) {
      if (gen === this.firstLastGeneration) el.replaceChildren(h("div", { class: "xai-message" }, `First vs last checkpoint failed: ${messageOf(e)}`));
    }
  }

  /** The models, methods and rows of the grid as one query for sanity and agreement. */
  private group(): GroupQuery {
    const s = this.host.state();
    const columns = this.host.columns();
    const q = this.host.query(columns[0]);
    const models = columns.map((c) => c.model).filter((m, k, all) => all.findIndex((x) => x.run === m.run && x.step === m.step) === k);
    const layer = columns.map((c) => this.host.query(c).layer).find((l) => l !== null) ?? null;
    const neuron = columns.map((c) => this.host.query(c).neuron).find((n) => n !== null) ?? null;
    return { samples: s.samples!, models, methods: s.methods, indices: s.rows.slice(0, SANITY_ROWS), target: q.target, layer, neuron };
  }

  /** The scores of one cell's map on the chosen settings, if computed. */
  scoresOf(c: Column, index: number): SampleScores | { error: string } | undefined {
    return this.data.cachedScores(this.host.query(c), this.options(), index);
  }

  /** Score every column (one request each), put each score under its map, then rank the methods. */
  private async fillScores(grid: GridView, columns: Column[], rows: number[], current: () => boolean): Promise<void> {
    const metric = this.host.state().trust.metric;
    const put = (c: Column) => {
      for (const index of rows) {
        const cell = grid.cells.get(cellKey(index, c));
        const r = this.scoresOf(c, index);
        if (!cell) continue;
        if (!r) cell.setScore(h("div", { class: "xai-loading" }, "scoring…"));
        else if ("error" in r) cell.setScore(h("div", { class: "xai-error" }, `score failed: ${r.error}`));
        else cell.setScore(r[metric] ? scoreView(metric, r[metric]!) : h("div", { class: "xai-empty" }, `no ${METRIC_LABELS[metric]} score`));
      }
    };
    this.panel.message(this.panel.ranking, "Ranking of the methods", "scoring the maps…");
    await Promise.all(
      columns.map(async (c) => {
        put(c);
        try {
          await this.data.loadScores(this.host.query(c), this.options(), rows);
        } catch {
          /* the error is cached per map and shown under it */
        }
        if (current()) put(c);
      }),
    );
    if (current()) this.drawRanking(columns, rows, metric);
  }

  /** The ranking table from the cached scores of the grid's maps. */
  private drawRanking(columns: Column[], rows: number[], metric: Metric): void {
    const maps: ScoredMap[] = [];
    const missing: string[] = [];
    for (const c of columns)
      for (const index of rows) {
        const r = this.scoresOf(c, index);
        if (r && !("error" in r)) maps.push({ method: c.method, run: c.model.run, step: c.model.step, index, scores: r });
        else if (r) missing.push(`${c.model.run}@${c.model.step} ${c.methodLabel} #${index}: ${r.error}`);
      }
    const order = [...new Set(columns.map((c) => c.method))];
    const models = new Set(columns.map((c) => `${c.model.run}@${c.model.step}`)).size;
    const what = `over ${models} model${models === 1 ? "" : "s"} × ${rows.length} sample${rows.length === 1 ? "" : "s"}`;
    this.ranked = { rows: rankMethods(maps, metric, order), metric, what, missing: missing.slice(0, 6) };
    this.drawVerdict();
  }

  /** The ranking table and the verdict above the panel's parts, from the last ranking and sanity answer. */
  private drawVerdict(): void {
    if (!this.ranked) return;
    const { rows, metric, what, missing } = this.ranked;
    this.panel.showRanking(rows, metric, this.host.methodLabel, what, missing, this.flaggedIds);
    this.panel.showVerdict(verdict(rows, metric, this.flaggedIds, this.host.methodLabel));
  }

  /** Run the sanity check for the grid's models and methods; badge the columns whose maps survive randomization. */
  private async fillSanity(grid: GridView, columns: Column[], current: () => boolean): Promise<void> {
    const title = "Sanity check";
    this.panel.message(this.panel.sanity, title, "randomizing the models' layers and computing the maps again…");
    let answer: SanityResponse;
    try {
      answer = await this.data.sanity(this.group());
    } catch (e) {
      if (current()) this.panel.message(this.panel.sanity, title, `The sanity check failed: ${messageOf(e)}`, true);
      return;
    }
    if (!current()) return;
    const threshold = answer.threshold ?? DEFAULT_SANITY_THRESHOLD;
    const isFlagged = (c: SanityResponse["cells"][number]) => flagged(c, c.threshold ?? threshold);
    this.panel.showSanity(answer.cells, threshold, this.host.methodLabel, isFlagged, answer.randomization);
    this.flaggedIds = new Set(answer.cells.filter(isFlagged).map((c) => c.method));
    this.drawVerdict();
    for (const c of columns) {
      const cell = answer.cells.find((x) => x.run === c.model.run && x.step === c.model.step && x.method === c.method);
      grid.setBadge(c, cell && isFlagged(cell) ? sanityBadge(c.methodLabel) : null);
    }
  }

  /** Ask for the agreement matrices of the grid's models and methods and draw them. */
  private async fillAgreement(current: () => boolean): Promise<void> {
    this.panel.message(this.panel.agreement, "Agreement", "computing rank correlations between the maps…");
    try {
      const answer = await this.data.agreement(this.group());
      if (!current()) return;
      this.lastAgreement = answer;
      this.drawAgreement(answer);
    } catch (e) {
      if (current()) this.panel.message(this.panel.agreement, "Agreement", `Agreement failed: ${messageOf(e)}`, true);
    }
  }

  /** The matrices of the chosen sample (or the mean over the grid's samples). */
  private drawAgreement(a: AgreementResponse): void {
    const s = this.host.state();
    const indices = a.indices ?? s.rows;
    const k = this.agreementChoice === MEAN ? -1 : indices.indexOf(+this.agreementChoice);
    if (k < 0) this.agreementChoice = MEAN;
    const pick = (x: { matrix: (number | null)[][]; per_sample?: (number | null)[][][] }) => (k >= 0 && x.per_sample?.[k] ? x.per_sample[k] : x.matrix);
    const notes: string[] = [];
    const methodIds = s.methods.map((m) => m.id);
    const methods: MatrixData[] = a.methods.flatMap((m) => {
      if (m.ok === false) return notes.push(`${m.run}@${m.step}: ${m.error ?? "failed"}`), [];
      const ids = m.methods ?? methodIds;
      return ids.length >= 2 ? [{ caption: `${m.run}@${m.step}`, labels: ids.map(this.host.methodLabel), matrix: pick(m) }] : [];
    });
    const models: MatrixData[] = a.models.flatMap((m) => {
      if (m.ok === false) return notes.push(`${this.host.methodLabel(m.method)}: ${m.error ?? "failed"}`), [];
      const refs: ModelRef[] = m.models ?? this.group().models;
      return refs.length >= 2 ? [{ caption: this.host.methodLabel(m.method), labels: refs.map((r) => `${r.run}@${r.step}`), matrix: pick(m) }] : [];
    });
    for (const e of a.errors ?? []) notes.push(`${e.run}@${e.step} ${this.host.methodLabel(e.method)}: ${e.error}`);
    if (!methods.length && !models.length) notes.push("Choose two methods or two models to compare.");
    const choices = [{ value: MEAN, text: `mean over ${indices.length} sample${indices.length === 1 ? "" : "s"}` }, ...indices.map((i) => ({ value: String(i), text: `#${i}` }))];
    this.panel.showAgreement(choices, this.agreementChoice, methods, models, notes);
  }

  /** Forget cached errors (Refresh). */
  forgetErrors(): void {
    this.data.forgetErrors();
  }
}
