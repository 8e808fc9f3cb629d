// Wiring: state changes -> requests -> views. Responses for a selection that changed meanwhile are dropped.
import { ApiError, getLayers, getMethods, getProgress, getRuns, getSessionGroups, getTensorBoardRuns, imageUrl, postApplicability, postCancel, postSuggestions } from "./api";
import { withApplicability } from "./heads";
import { classNames, sampleCount } from "./catalog";
import { sessionHparams, type Hparams } from "./hparams";
import { scaleGroup, sharedScales } from "./heatmap";
import { download, npyBytes, toCsv } from "./export";
import { columnName, mapsNpz, predictionsCsv } from "./gridExport";
import { DataModel, messageOf, type MapQuery } from "./model";
import { colorIds, colorOf, parseColorGroup, urlColorGroup } from "./runColors";
import { initialState, readUrlState, sameModel, Store, writeUrlState, type ViewState } from "./state";
import { LatestRequest } from "./suggest";
import { currentTheme, type Theme } from "./theme";
import { TrustController } from "./trustController";
import type { LayersResponse, MethodInfo, ModelRef, RunInfo, SuggestionsResponse } from "./types";
import type { CellView } from "./views/cell";
import { h, keepFocus, replaceChildren } from "./views/dom";
import { cellKey, GridView, type Column } from "./views/grid";
import { ListingErrorsView } from "./views/listingErrors";
import { ProgressView } from "./views/progress";
import { defaultParams, latestStep, SetupView } from "./views/setup";
import { SuggestionPanel } from "./views/suggestions";
import { spreadSteps, timelineControls } from "./views/timeline";
import { gridToolbar } from "./views/toolbar";

const MAX_ROWS = 16;
const BASE_SIZE = 128;
const STRIP_STEPS = 8;

/** Keys of ViewState whose change needs new maps or predictions. */
const FETCH_KEYS: (keyof ViewState)[] = ["samples", "models", "methods", "target", "layer", "neuron", "rows"];
const SUGGEST_KEYS: (keyof ViewState)[] = ["samples", "models", "layer", "neuron", "histogram", "axis"];
/** Keys the setup bar and the grid toolbar show (the opacity slider keeps its own value while dragged). */
const SETUP_KEYS: (keyof ViewState)[] = ["samples", "models", "methods", "target", "layer", "neuron", "hparams"];
const TOOLBAR_KEYS: (keyof ViewState)[] = ["samples", "rows", "zoom", "scale"];

/** `o` restricted to `keys`. */
const pick = <T>(o: Record<string, T>, keys: string[]): Record<string, T> => Object.fromEntries(Object.entries(o).filter(([k]) => keys.includes(k)));

const changed = (s: ViewState, prev: ViewState, keys: (keyof ViewState)[]) => keys.some((k) => JSON.stringify(s[k]) !== JSON.stringify(prev[k]));

export class App {
  readonly store: Store;
  private runs: RunInfo[] = [];
  private readonly listingErrors = new ListingErrorsView();
  private methods: MethodInfo[] = [];
  private layers: LayersResponse | null = null;
  private sessions = new Map<string, Hparams>();
  private layersFor = "";
  private layersReady: Promise<void> = Promise.resolve();
  private readonly data: DataModel;
  private readonly setup: SetupView;
  private readonly progress: ProgressView;
  readonly suggestions: SuggestionPanel;
  readonly trust: TrustController;
  private readonly gridSlot = h("div", { id: "xai-grid-slot" });
  private readonly gridTools = h("div", { class: "xai-toolbar" });
  private readonly timelineSlot = h("div", { class: "xai-timeline", id: "xai-timeline" });
  private grid: GridView | null = null;
  private timeline: GridView | null = null;
  private strip: GridView | null = null;
  private columns: Column[] = [];
  private generation = 0;
  private suggestGeneration = 0;
  /** The suggestions request in flight; a new selection cancels it on the server (its rows stop being computed). */
  private readonly suggestRequest = new LatestRequest();
  private stats: SuggestionsResponse | null = null;
  private images = new Map<string, HTMLImageElement>();
  private colorIds = new Map<string, number>();
  private theme: Theme = currentTheme();
  readonly el: HTMLElement;

  constructor(root: HTMLElement) {
    this.store = new Store(readUrlState());
    this.data = new DataModel((p) => this.progress.show(p.done, p.total, "computing"), {
      samples: (s) => this.sampleVersion(s),
      model: (m) => this.runs.find((r) => r.run === m.run)?.checkpoints.find((c) => c.step === m.step)?.version ?? "",
    });
    this.trust = new TrustController(
      {
        state: () => this.store.get(),
        grid: () => this.grid,
        columns: () => this.columns,
        query: (c) => this.query(c),
        methodLabel: (id) => this.methodLabel(id),
        update: (patch) => this.store.update(patch),
        checkpoints: (run) => (this.runs.find((r) => r.run === run)?.checkpoints ?? []).map((c) => ({ run, step: c.step })),
      },
      this.data,
      {
        samples: (s) => this.sampleVersion(s),
        model: (m) => this.runs.find((r) => r.run === m.run)?.checkpoints.find((c) => c.step === m.step)?.version ?? "",
      },
    );
    this.setup = new SetupView({ update: (patch) => this.store.update(patch) });
    this.progress = new ProgressView(() => void this.cancel());
    this.suggestions = new SuggestionPanel({
      imageUrl: (i) => this.imageSrc(i),
      className: (c) => this.className(c),
      classCount: () => this.classNames().length,
      onPick: (indices, how) => this.pickRows(indices, how),
      onFilters: (filters) => this.store.update({ filters }),
      onHistogram: (histogram) => this.store.update({ histogram }),
      onExportCsv: (header, rows) => download("xai-selection.csv", toCsv(header, rows), "text/csv"),
      onAxis: (axis) => this.store.update({ axis }),
    });
    this.el = h(
      "main",
      { class: "xai-root" },
      h("h1", { class: "xai-sr-only" }, "XAI: explanations of the logged models"),
      this.setup.el,
      this.progress.el,
      this.listingErrors.el,
      h("div", { class: "xai-panel", id: "xai-compare" }, h("h2", {}, "Comparison"), this.gridTools, this.gridSlot),
      this.trust.panel.el,
      h("div", { class: "xai-panel" }, h("h2", {}, "Over training"), this.timelineSlot),
      this.suggestions.el,
    );
    root.appendChild(this.el);
    this.store.subscribe((s, prev) => this.changed(s, prev));
    window.addEventListener("keydown", (e) => this.key(e));
  }

  /** Load runs and methods, fill defaults for what the URL did not say, draw everything. */
  async start(): Promise<void> {
    try {
      const [runs, methods, groups, tbRuns] = await Promise.all([getRuns(), getMethods(), getSessionGroups().catch(() => []), getTensorBoardRuns().catch(() => [])]);
      this.runs = runs.runs;
      this.listingErrors.show(runs.errors ?? []);
      this.assignColors(tbRuns);
      this.methods = methods.methods;
      this.sessions = sessionHparams(groups);
    } catch (e) {
      this.progress.tell(`Cannot load the XAI data: ${messageOf(e)}`);
      return;
    }
    if (!this.runs.some((r) => r.checkpoints.length)) {
      replaceChildren(this.gridSlot, h("div", { class: "xai-empty" }, "No checkpoints logged yet. Log some with tb_xai_plugin.summary.checkpoint or the Keras callback."));
    }
    const s = this.store.get();
    this.store.replace({ ...s, ...this.withDefaults(s) });
    const nothing: ViewState = { ...initialState(), models: [], methods: [], rows: [], timelineStep: -1 };
    this.changed(this.store.get(), nothing);
  }

  /** TensorBoard's colour per run: its own run order, then any run it did not list, in ours. */
  private assignColors(tbRuns: string[]): void {
    const order = [...tbRuns, ...this.runs.map((r) => r.run).filter((r) => !tbRuns.includes(r))];
    this.colorIds = colorIds(order, parseColorGroup(urlColorGroup()));
  }

  /** A run's colour in the current theme. */
  runColor(run: string): string {
    return colorOf(this.colorIds.get(run), this.theme);
  }

  /** Switch light / dark: run swatches and the canvases that draw theme colours follow. */
  setTheme(theme: Theme): void {
    this.theme = theme;
    this.el.querySelectorAll<HTMLElement>(".xai-swatch[data-run]").forEach((el) => (el.style.background = this.runColor(el.dataset.run!)));
    this.suggestions.redraw();
  }

  /** The state with unknown runs, steps and methods dropped and empty choices given defaults. */
  private withDefaults(s: ViewState): Partial<ViewState> {
    const runOf = (name: string) => this.runs.find((r) => r.run === name);
    let models = s.models.filter((m) => runOf(m.run)?.checkpoints.some((c) => c.step === m.step));
    if (!models.length)
      models = this.runs
        .filter((r) => r.checkpoints.length)
        .slice(0, 2)
        .map((r) => ({ run: r.run, step: latestStep(r)! }));
    let samples = s.samples && runOf(s.samples.run)?.sample_sets.some((x) => x.name === s.samples!.name) ? s.samples : null;
    if (!samples) {
      const r = this.runs.find((x) => x.sample_sets.length);
      samples = r ? { run: r.run, name: r.sample_sets[0].name } : null;
    }
    // Known methods only, each with its schema's parameters (defaults for the missing ones).
    let methods = s.methods.flatMap((m) => {
      const info = this.methods.find((x) => x.id === m.id);
      return info ? [{ id: m.id, params: { ...defaultParams(info), ...pick(m.params, Object.keys(defaultParams(info))) } }] : [];
    });
    if (!methods.length && this.methods.length) methods = [{ id: this.methods[0].id, params: defaultParams(this.methods[0]) }];
    const count = this.sampleCount(samples);
    const rows = s.rows.filter((i) => i < count);
    return { models, samples, methods, rows: rows.length ? rows : [0] };
  }

  /** React to a state change: URL, setup bar, toolbar, grid, timeline, suggestions, each only when its inputs changed. */
  private changed(s: ViewState, prev: ViewState): void {
    writeUrlState(s);
    if (!s.models.length || !sameModel(s.models[0], prev.models[0] ?? { run: "", step: -1 }) || !this.layers) this.layersReady = this.loadLayers();
    if (changed(s, prev, SETUP_KEYS)) this.renderSetup();
    if (changed(s, prev, TOOLBAR_KEYS)) this.renderGridTools();
    if (changed(s, prev, FETCH_KEYS)) this.refreshGrid();
    else {
      if (s.zoom !== prev.zoom) this.forEachCell((c) => c.resize(BASE_SIZE * s.zoom));
      if (s.opacity !== prev.opacity) this.forEachCell((c) => c.setOpacity(s.opacity));
      if (s.scale !== prev.scale) for (const g of [this.grid, this.timeline, this.strip]) if (g) this.applyScale(g);
    }
    if (changed(s, prev, [...FETCH_KEYS, "trust"])) this.trust.refresh();
    if (changed(s, prev, [...FETCH_KEYS, "timelineRun", "timelineStep"])) this.refreshTimeline();
    if (changed(s, prev, SUGGEST_KEYS)) void this.loadSuggestions();
    else if (changed(s, prev, ["filters"]) && this.stats) this.suggestions.show(this.stats, s.filters, s.histogram);
  }

  /** Redraw the setup bar from the data loaded so far and the state. */
  private renderSetup(): void {
    this.setup.render(
      { runs: this.runs, sessions: this.sessions, methods: this.methods, layers: this.layers, classNames: this.classNames(), runColor: (r) => this.runColor(r) },
      this.store.get(),
    );
  }

  /** Fetch the first model's layers (for the layer picker and method applicability), dropping outdated answers. */
  private async loadLayers(): Promise<void> {
    const first = this.store.get().models[0];
    const key = first ? `${first.run}@${first.step}` : "";
    if (key === this.layersFor) return;
    this.layersFor = key;
    this.layers = null;
    if (!first) return;
    try {
      const layers = await getLayers(first);
      if (this.layersFor !== key) return; // the first model changed meanwhile
      this.layers = layers;
      this.renderSetup();
      if (layers.methods_from === "model") return;
      const checked = await postApplicability(first); // the manifest cannot tell: a worker checks the loaded model
      if (this.layersFor !== key) return;
      this.layers = withApplicability(layers, checked);
      this.renderSetup();
    } catch (e) {
      if (this.layersFor === key) this.progress.tell(`Cannot read the layers of ${first.run} at step ${first.step}: ${messageOf(e)}`);
    }
  }

  // --- the grid ---

  /** Redraw the grid's toolbar. */
  private renderGridTools(): void {
    const s = this.store.get();
    const tools = gridToolbar(s, this.sampleCount(s.samples), {
      step: (d) => this.step(d),
      update: (patch) => this.store.update(patch),
      exportPng: () => this.exportPng(),
      exportNpz: () => this.exportNpz(),
      exportCsv: () => this.exportCsv(),
      refresh: () => void this.refresh(),
    });
    keepFocus(this.gridTools, () => replaceChildren(this.gridTools, ...tools));
  }

  /** Read the listing again (sample sets logged again, checkpoints rewritten get new versions), forget cached
   * errors, and draw everything again: what failed is asked for again, what is cached stays. */
  private async refresh(): Promise<void> {
    try {
      const [runs, tbRuns] = await Promise.all([getRuns(), getTensorBoardRuns().catch(() => [])]);
      this.runs = runs.runs;
      this.listingErrors.show(runs.errors ?? []);
      this.assignColors(tbRuns);
    } catch (e) {
      this.progress.tell(`Cannot reload the runs: ${messageOf(e)}`);
    }
    this.data.forgetErrors();
    this.trust.forgetErrors();
    this.renderSetup();
    this.renderGridTools();
    this.refreshGrid();
    this.trust.refresh();
    this.refreshTimeline();
    void this.loadSuggestions();
  }

  /** Rebuild the grid for the current selection and fill it from the cache, fetching what is missing. */
  private refreshGrid(): void {
    const s = this.store.get();
    const gen = ++this.generation;
    this.progress.tell("");
    this.columns = s.models.flatMap((model) => s.methods.map((m) => ({ model, method: m.id, methodLabel: this.methodLabel(m.id) })));
    if (!s.samples || !this.columns.length) {
      this.grid = null;
      replaceChildren(this.gridSlot, h("div", { class: "xai-empty" }, !s.samples ? "Choose a sample set." : "Choose at least one model and one method."));
      return;
    }
    this.grid = this.buildGrid(s.rows, this.columns);
    replaceChildren(this.gridSlot, this.grid.el);
    void this.fill(this.grid, s.rows, this.columns, gen, () => this.generation);
  }

  /** An empty grid of cells for `rows` x `columns`, wired to the shared hover, zoom and opacity. */
  private buildGrid(rows: number[], columns: Column[]): GridView {
    const s = this.store.get();
    return new GridView({
      rows,
      columns,
      rowLabel: (i) => `#${i}${this.labelName(i)}`,
      cell: (index, column) => ({
        image: this.image(index),
        size: BASE_SIZE * s.zoom,
        opacity: s.opacity,
        className: (c) => this.className(c),
        onHover: (u, v) => this.forEachCell((c) => c.setHover(u, v)),
        onDownload: () => this.exportCellNpy(index, column),
        label: `sample ${index}, ${column.model.run} at step ${column.model.step}, ${column.methodLabel}`,
      }),
      onRemoveRow: (i) => this.store.update({ rows: this.store.get().rows.filter((r) => r !== i) }),
      runColor: (r) => this.runColor(r),
    });
  }

  /** Fill a grid's cells: predictions and maps, each column as its own request; drop stale answers. */
  private async fill(grid: GridView, rows: number[], columns: Column[], gen: number, current: () => number): Promise<void> {
    const s = this.store.get();
    const samples = s.samples!;
    const models = columns.map((c) => c.model).filter((m, k, all) => all.findIndex((x) => sameModel(x, m)) === k);
    const putPredictions = () => {
      for (const index of rows)
        for (const c of columns) {
          const p = this.data.cachedPrediction(samples, c.model, index);
          if (p) grid.cells.get(cellKey(index, c))?.setPredictions(p);
        }
    };
    putPredictions();
    const preds = this.data
      .loadPredictions(samples, models, rows)
      .then(() => current() === gen && putPredictions())
      .catch((e) => current() === gen && this.progress.tell(`Predictions failed: ${messageOf(e)}`));
    const maps = columns.map(async (c) => {
      const q = this.query(c);
      const put = () => {
        for (const index of rows) {
          const cell = grid.cells.get(cellKey(index, c));
          const m = this.data.cachedMap(q, index);
          if (!cell || !m) continue;
          if ("error" in m) cell.setError(m.error);
          else cell.setMap(m);
        }
        this.applyScale(grid);
      };
      put();
      try {
        await this.data.loadMaps(q, rows);
        if (current() === gen) put();
      } catch (e) {
        if (current() !== gen) return;
        put();
        const text = e instanceof ApiError && e.cancelled ? "Cancelled. Press Refresh to compute it again." : messageOf(e);
        for (const index of rows) {
          const cell = grid.cells.get(cellKey(index, c));
          if (cell && cell.state === "loading") cell.setError(text);
        }
      }
    });
    await Promise.all([preds, ...maps]);
  }

  /** Each map on its own range, or with shared colours every map of a group (row, column, method, grid) on
   * the range covering the group. */
  private applyScale(grid: GridView): void {
    const choice = this.store.get().scale;
    const shown: { cell: CellView; group: string; signed: boolean; range: [number, number] }[] = [];
    for (const [key, cell] of grid.cells) {
      const map = cell.shownMap;
      const [index, run, step, method] = JSON.parse(key) as [number, string, number, string];
      const group = scaleGroup(choice, { index, run, step, method });
      if (group === null) cell.setScale(null);
      else if (map && cell.state === "ready") shown.push({ cell, group, signed: map.signed, range: map.range });
    }
    const scales = sharedScales(shown);
    for (const x of shown) x.cell.setScale(scales.get(x.group)!);
  }

  private query(c: Column): MapQuery {
    const s = this.store.get();
    const info = this.methods.find((m) => m.id === c.method);
    const choice = s.methods.find((m) => m.id === c.method) ?? { id: c.method, params: {} };
    return {
      samples: s.samples!,
      model: c.model,
      method: choice,
      target: s.target,
      layer: info?.takes_layer || info?.takes_neuron ? s.layer : null,
      neuron: info?.takes_neuron ? s.neuron : null,
    };
  }

  // --- over training ---

  private timelineGeneration = 0;

  /** Rebuild the over-training panel: run picker, step slider, the maps at that step and the strip over steps. */
  private refreshTimeline(): void {
    const s = this.store.get();
    const runName = s.timelineRun ?? s.models[0]?.run ?? this.runs.find((r) => r.checkpoints.length)?.run ?? null;
    const run = this.runs.find((r) => r.run === runName) ?? null;
    const step = run && s.timelineStep !== null && run.checkpoints.some((c) => c.step === s.timelineStep) ? s.timelineStep : run ? latestStep(run) : null;
    const controls = timelineControls({
      runs: this.runs,
      run,
      step,
      onRun: (r) => this.store.update({ timelineRun: r, timelineStep: null }),
      onStep: (st) => this.store.update({ timelineRun: run!.run, timelineStep: st }),
      runColor: (r) => this.runColor(r),
    });
    const gen = ++this.timelineGeneration;
    if (!run || step === null || !s.samples || !s.methods.length) {
      this.timeline = this.strip = null;
      keepFocus(this.timelineSlot, () => replaceChildren(this.timelineSlot, controls));
      return;
    }
    const model: ModelRef = { run: run.run, step };
    const columns = s.methods.map((m) => ({ model, method: m.id, methodLabel: this.methodLabel(m.id) }));
    const rows = s.rows.slice(0, 1);
    this.timeline = this.buildGrid(rows, columns);
    this.timeline.el.id = "xai-timeline-grid";
    // The strip: the first method at up to STRIP_STEPS checkpoints, to see the change at a glance.
    const stripColumns = spreadSteps(run.checkpoints.map((c) => c.step), STRIP_STEPS).map((st) => ({
      model: { run: run.run, step: st },
      method: s.methods[0].id,
      methodLabel: this.methodLabel(s.methods[0].id),
    }));
    this.strip = this.buildGrid(rows, stripColumns);
    this.strip.el.id = "xai-timeline-strip";
    keepFocus(this.timelineSlot, () =>
      replaceChildren(this.timelineSlot, controls, this.timeline!.el, h("div", { class: "xai-label" }, "all checkpoints"), this.strip!.el, this.trust.firstLastEl),
    );
    this.trust.setTimelineRun(run.run);
    const current = () => this.timelineGeneration;
    const strip = this.strip;
    void this.fill(this.timeline, rows, columns, gen, current).then(() => {
      if (current() === gen) return this.fill(strip, rows, stripColumns, gen, current);
    });
  }

  // --- suggestions ---

  /** Fetch per-sample statistics for the chosen models and show them; outdated answers are dropped. */
  private async loadSuggestions(): Promise<void> {
    const s = this.store.get();
    const gen = ++this.suggestGeneration;
    this.stats = null;
    const stale = this.suggestRequest.drop();
    if (stale) void postCancel(stale).catch(() => undefined);
    if (!s.samples || !s.models.length) {
      this.suggestions.message("Choose a sample set and at least one model.");
      return;
    }
    this.suggestions.message("computing statistics over the sample set…");
    try {
      // The activation histogram needs a layer: the chosen one, else the model's last conv layer.
      if (s.histogram === "activation" && s.layer === null) await this.layersReady;
      if (gen !== this.suggestGeneration) return;
      const layer = s.layer ?? (s.histogram === "activation" ? (this.layers?.default_layer ?? null) : null);
      const request = { models: s.models, samples: s.samples, layer, neuron: s.neuron, ...(s.axis === "evidence" && s.models.length >= 2 ? { evidence: true } : {}) };
      const stats = await this.data.track("s", this.sampleCount(s.samples), (id) => this.trackSuggestions(id, postSuggestions({ ...request, request_id: id })));
      if (gen !== this.suggestGeneration) return;
      this.stats = stats;
      const now = this.store.get();
      this.suggestions.axis = now.axis;
      this.suggestions.show(stats, now.filters, now.histogram);
    } catch (e) {
      const cancelled = e instanceof ApiError && e.cancelled;
      if (gen === this.suggestGeneration) this.suggestions.message(cancelled ? "Suggestions cancelled; change the selection or press Refresh to compute them." : `Suggestions failed: ${messageOf(e)}`);
    }
  }

  /** Show the progress of suggestions request `id` in the panel (GET progress every 400 ms) until `answer` settles. */
  private async trackSuggestions<T>(id: string, answer: Promise<T>): Promise<T> {
    this.suggestRequest.start(id);
    const cancel = () => {
      if (this.suggestRequest.drop() === id) void postCancel(id).catch(() => undefined);
    };
    this.suggestions.working(0, 0, cancel);
    const timer = setInterval(() => {
      void getProgress(id)
        .then((p) => this.suggestRequest.isCurrent(id) && p.state === "running" && this.suggestions.working(p.done, p.total, cancel))
        .catch(() => undefined); // progress is a courtesy
    }, 400);
    try {
      return await answer;
    } finally {
      clearInterval(timer);
      if (this.suggestRequest.isCurrent(id)) this.suggestRequest.drop();
    }
  }

  /** "add" (a clicked point) joins the grid; "replace" (a brush, a bar) becomes it (at most MAX_ROWS rows). */
  private pickRows(indices: number[], how: "add" | "replace"): void {
    const rows = how === "add" ? [...new Set([...this.store.get().rows, ...indices])].slice(-MAX_ROWS) : indices.slice(0, MAX_ROWS);
    if (rows.length) this.store.update({ rows });
  }

  // --- navigation, cancel, export ---

  /** Move every row to the next (+1) or previous (-1) sample, wrapping around. */
  step(delta: number): void {
    const s = this.store.get();
    const n = this.sampleCount(s.samples);
    if (!n) return;
    this.store.update({ rows: s.rows.map((i) => (((i + delta) % n) + n) % n) });
  }

  /** Arrow keys move the rows, unless the person is typing in a control. */
  private key(e: KeyboardEvent): void {
    const t = e.target as HTMLElement | null;
    if (t && /^(INPUT|SELECT|TEXTAREA)$/.test(t.tagName)) return;
    if (e.key === "ArrowRight") this.step(1);
    else if (e.key === "ArrowLeft") this.step(-1);
  }

  /** Cancel everything in flight on the server; the waiting cells then say so. */
  private async cancel(): Promise<void> {
    await this.data.cancelAll();
    this.progress.tell("Cancelled.");
  }

  /** Download the grid as one PNG. */
  private exportPng(): void {
    if (!this.grid) return;
    const canvas = this.grid.toCanvas(this.columns, this.store.get().rows, (i) => `#${i}${this.labelName(i)}`);
    canvas.toBlob((blob) => blob && download("xai-grid.png", blob, "image/png"), "image/png");
  }

  /** Every column's maps for the shown rows, one [rows, H, W] array per column, in one .npz. */
  private exportNpz(): void {
    const { bytes, skipped } = mapsNpz(this.columns, this.store.get().rows, (c, i) => this.data.cachedMap(this.query(c), i), (c, i) => this.trust.scoresOf(c, i));
    download("xai-maps.npz", bytes, "application/zip");
    this.progress.tell(skipped.length ? `Left out of the .npz (not computed): ${skipped.join(", ")}` : "");
  }

  /** Download one cell's map as a [H, W] float32 .npy. */
  private exportCellNpy(index: number, c: Column): void {
    const m = this.data.cachedMap(this.query(c), index);
    if (!m || "error" in m) return;
    download(`${columnName(c)}_${index}.npy`, npyBytes(m.values, [m.height, m.width]), "application/octet-stream");
  }

  /** Download every shown model's top-k predictions on the shown rows as CSV. */
  private exportCsv(): void {
    const s = this.store.get();
    if (!s.samples) return;
    const csv = predictionsCsv(s.rows, s.models, (m, i) => this.data.cachedPrediction(s.samples!, m, i), (c) => this.className(c));
    download("xai-predictions.csv", csv, "text/csv");
  }

  // --- lookups ---

  /** Every cell of the grid, the over-training grid and its strip. */
  private forEachCell(fn: (c: CellView) => void): void {
    this.grid?.forEach(fn);
    this.timeline?.forEach(fn);
    this.strip?.forEach(fn);
  }

  /** Size of a sample set (0 when unknown). */
  private sampleCount(samples: ViewState["samples"]): number {
    return sampleCount(this.runs, samples);
  }

  /** Class names for the current sample set and first model. */
  private classNames(): string[] {
    const s = this.store.get();
    return classNames(this.runs, s.samples, s.models[0]);
  }

  /** A class index's name. */
  private className(c: number): string {
    return this.classNames()[c] ?? `class ${c}`;
  }

  /** ' (label name)' of a sample once its predictions arrived, else ''. */
  private labelName(index: number): string {
    const s = this.store.get();
    const p = s.samples && s.models[0] ? this.data.cachedPrediction(s.samples, s.models[0], index) : undefined;
    return p && !("error" in p) && p.label !== null && p.label >= 0 ? ` (${this.className(p.label)})` : "";
  }

  /** A method's display label. */
  private methodLabel(id: string): string {
    return this.methods.find((m) => m.id === id)?.label ?? id;
  }

  /** URL of a sample's image in the current sample set, versioned by its sha256. */
  private imageSrc(index: number): string {
    const s = this.store.get().samples;
    return s ? imageUrl(s, index, this.sampleVersion(s)) : "";
  }

  /** A sample set's sha256 from the listing ('' when unknown). */
  private sampleVersion(s: { run: string; name: string }): string {
    return this.runs.find((r) => r.run === s.run)?.sample_sets.find((x) => x.name === s.name)?.sha256 ?? "";
  }

  /** One shared <img> per sample: every cell draws the same element. */
  private image(index: number): HTMLImageElement {
    const src = this.imageSrc(index);
    let img = this.images.get(src);
    if (!img) {
      img = new Image();
      img.src = src;
      this.images.set(src, img);
    }
    return img;
  }
}
