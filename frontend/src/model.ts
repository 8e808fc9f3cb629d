// Data access with caches: maps and predictions fetched once per (model, method, settings, sample),
// identical requests in flight shared, progress counted, cancellation forwarded to the server.
// Keys hold the sample set's sha256 and the checkpoint's checksum (from GET runs): a set logged again
// or a checkpoint rewritten is new data. Errors are kept until forgetErrors (the Refresh button).
import { ApiError, getProgress, newRequestId, postAttributions, postCancel, postPredictions } from "./api";
import { decodeFloat32, finiteRange, mapAt } from "./heatmap";
import type { CellMap, CellPredictions } from "./views/cell";
import type { AttributionsResponse, MethodChoice, ModelRef, SampleSetRef, Target } from "./types";

export type MapResult = CellMap | { error: string };
export type PredResult = CellPredictions | { error: string };

export interface MapQuery {
  samples: SampleSetRef;
  model: ModelRef;
  method: MethodChoice;
  target: Target;
  layer: string | null;
  neuron: number | null;
}

/** The versions of what a result was computed from: a sample set's sha256, a checkpoint's checksum. */
export interface Versions {
  samples: (s: SampleSetRef) => string;
  model: (m: ModelRef) => string;
}

/** Cache key of one map: everything that changes it (the data's versions too), and the sample index. */
export const mapKey = (q: MapQuery, index: number, v: Versions): string =>
  JSON.stringify([
    q.samples.run, q.samples.name, v.samples(q.samples), q.model.run, q.model.step, v.model(q.model),
    q.method.id, sortedParams(q.method.params), q.target, q.layer, q.neuron, index,
  ]); // prettier-ignore

const sortedParams = (p: Record<string, unknown>) => Object.keys(p).sort().map((k) => [k, p[k]]);

const predKey = (s: SampleSetRef, m: ModelRef, index: number, v: Versions): string =>
  JSON.stringify([s.run, s.name, v.samples(s), m.run, m.step, v.model(m), index]);

/** The server computed on another version of the sample set than the listing named: the listing is old. */
export class StaleListingError extends Error {
  constructor() {
    super("the sample set was logged again since the listing was read: press Refresh");
    this.name = "StaleListingError";
  }
}

/** Errors worth asking again for later (server busy, cancelled, unreachable, old listing) are not cached. */
export const transient = (e: unknown): boolean =>
  e instanceof StaleListingError || (e instanceof ApiError && (e.status === 0 || e.status === 409 || e.status >= 500));

/** A sentence for any failure. */
export const messageOf = (e: unknown): string =>
  e instanceof ApiError ? (e.cancelled ? "cancelled" : e.message) : e instanceof Error ? e.message : String(e);

export interface Progress {
  done: number;
  total: number;
}

export class DataModel {
  private maps = new Map<string, MapResult>();
  private preds = new Map<string, PredResult>();
  private labels = new Map<string, number | null>();
  private pending = new Map<string, Promise<void>>();
  private inflight = new Map<string, { units: number; fraction: number }>();
  private unitsDone = 0;
  private unitsTotal = 0;
  private poller: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly onProgress: (p: Progress) => void,
    private readonly versions: Versions = { samples: () => "", model: () => "" },
  ) {}

  cachedMap(q: MapQuery, index: number): MapResult | undefined {
    return this.maps.get(this.mapKey(q, index));
  }

  cachedPrediction(s: SampleSetRef, m: ModelRef, index: number): PredResult | undefined {
    const p = this.preds.get(this.predKey(s, m, index));
    if (!p || "error" in p) return p;
    return { ...p, label: this.labels.get(this.labelKey(s, index)) ?? null };
  }

  /** Drop every cached error, so that the next load asks the server again. */
  forgetErrors(): void {
    for (const cache of [this.maps, this.preds] as Map<string, MapResult | PredResult>[])
      for (const [key, value] of cache) if ("error" in value) cache.delete(key);
  }

  private mapKey(q: MapQuery, index: number): string {
    return mapKey(q, index, this.versions);
  }

  private predKey(s: SampleSetRef, m: ModelRef, index: number): string {
    return predKey(s, m, index, this.versions);
  }

  private labelKey(s: SampleSetRef, index: number): string {
    return JSON.stringify([s.run, s.name, this.versions.samples(s), index]);
  }

  /** Fetch the maps of `q` for `indices` not cached yet (one request), then resolve. */
  async loadMaps(q: MapQuery, indices: number[]): Promise<void> {
    const waits: Promise<void>[] = [];
    const missing: number[] = [];
    for (const i of indices) {
      const key = this.mapKey(q, i);
      if (this.maps.has(key)) continue;
      const p = this.pending.get(key);
      if (p) waits.push(p);
      else missing.push(i);
    }
    if (missing.length) {
      const job = this.fetchMaps(q, missing);
      for (const i of missing) this.pending.set(this.mapKey(q, i), job);
      waits.push(job);
    }
    await Promise.all(waits);
  }

  /** Run `work(requestId)` as `units` of the progress bar, cancellable through cancelAll. */
  async track<T>(prefix: string, units: number, work: (requestId: string) => Promise<T>): Promise<T> {
    const requestId = newRequestId(prefix);
    this.begin(requestId, units);
    try {
      return await work(requestId);
    } finally {
      this.end(requestId, units);
    }
  }

  private fetchMaps(q: MapQuery, indices: number[]): Promise<void> {
    return this.track("a", indices.length, async (requestId) => {
      try {
        const request = { models: [q.model], samples: q.samples, indices, methods: [q.method], target: q.target, layer: q.layer, neuron: q.neuron };
        this.storeMaps(q, indices, await postAttributions({ ...request, request_id: requestId }));
      } catch (e) {
        if (!transient(e)) for (const i of indices) this.maps.set(this.mapKey(q, i), { error: messageOf(e) });
        throw e;
      } finally {
        for (const i of indices) this.pending.delete(this.mapKey(q, i));
      }
    });
  }

  /** Cache one column's answer: a map per index (with its own range), or the cell's error for each. */
  private storeMaps(q: MapQuery, indices: number[], response: AttributionsResponse): void {
    const expected = this.versions.samples(q.samples);
    if (expected && response.samples_sha256 && response.samples_sha256 !== expected) throw new StaleListingError();
    const cell = response.cells.find((c) => c.method === q.method.id) ?? response.cells[0];
    if (!cell || !cell.ok || !cell.data || !cell.shape) {
      const error = cell?.error ?? "the server sent no map";
      for (const i of indices) this.maps.set(this.mapKey(q, i), { error });
      return;
    }
    const stack = decodeFloat32(cell.data);
    const [, height, width] = cell.shape;
    indices.forEach((index, k) =>
      this.maps.set(this.mapKey(q, index), {
        values: mapAt(stack, cell.shape!, k),
        height,
        width,
        range: cell.ranges?.[k] ?? finiteRange(mapAt(stack, cell.shape!, k)),
        signed: Boolean(cell.signed),
        target: cell.targets?.[k],
        score: cell.scores?.[k],
      }),
    );
  }

  /** Fetch top-k predictions of `models` on `indices` not cached yet. */
  async loadPredictions(samples: SampleSetRef, models: ModelRef[], indices: number[], topK = 3): Promise<void> {
    const needModels = models.filter((m) => indices.some((i) => !this.preds.has(this.predKey(samples, m, i))));
    const needIndices = indices.filter((i) => models.some((m) => !this.preds.has(this.predKey(samples, m, i))));
    if (!needModels.length || !needIndices.length) return;
    try {
      const r = await postPredictions({ models: needModels, samples, indices: needIndices, top_k: topK });
      r.indices.forEach((index, k) => this.labels.set(this.labelKey(samples, index), r.labels ? r.labels[k] : null));
      for (const m of r.models)
        r.indices.forEach((index, k) =>
          this.preds.set(
            this.predKey(samples, m, index),
            m.ok && m.top_classes && m.top_scores ? { classes: m.top_classes[k], scores: m.top_scores[k], label: null } : { error: m.error ?? "failed" },
          ),
        );
    } catch (e) {
      if (!transient(e)) for (const m of needModels) for (const i of needIndices) this.preds.set(this.predKey(samples, m, i), { error: messageOf(e) });
      throw e;
    }
  }

  /** Ask the server to stop every request in flight. */
  async cancelAll(): Promise<void> {
    await Promise.all([...this.inflight.keys()].map((id) => postCancel(id).catch(() => undefined)));
  }

  get busy(): boolean {
    return this.inflight.size > 0;
  }

  private begin(requestId: string, units: number): void {
    this.inflight.set(requestId, { units, fraction: 0 });
    this.unitsTotal += units;
    this.report();
    this.poller ??= setInterval(() => void this.poll(), 400);
  }

  private end(requestId: string, units: number): void {
    this.inflight.delete(requestId);
    this.unitsDone += units;
    if (!this.inflight.size) {
      this.unitsDone = this.unitsTotal = 0;
      if (this.poller) clearInterval(this.poller);
      this.poller = null;
    }
    this.report();
  }

  /** Server-side progress of each request in flight, as fractions. */
  private async poll(): Promise<void> {
    await Promise.all(
      [...this.inflight.entries()].map(async ([id, r]) => {
        try {
          const p = await getProgress(id);
          if (p.total > 0) r.fraction = Math.min(1, p.done / p.total);
        } catch {
          /* progress is a courtesy: a failed poll changes nothing */
        }
      }),
    );
    this.report();
  }

  private report(): void {
    let partial = 0;
    for (const r of this.inflight.values()) partial += r.units * r.fraction;
    this.onProgress({ done: Math.round(this.unitsDone + partial), total: this.unitsTotal });
  }
}
