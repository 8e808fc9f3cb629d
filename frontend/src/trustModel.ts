// Data access for the trust panel: faithfulness scores per (map, score settings, sample) fetched once per
// column and cached like maps; sanity and agreement answers cached per whole request. Keys hold the data's
// versions (sample set sha256, checkpoint checksum); errors are kept until forgetErrors (Refresh).
import { postAgreement, postFirstLast, postSanity, postScores, type AttributionsRequest } from "./api";
import { mapKey, messageOf, StaleListingError, transient, type DataModel, type MapQuery, type Versions } from "./model";
import { METRICS, sampleScores, type SampleScores, type ScoreOptions } from "./trust";
import type { AgreementResponse, FirstLastResponse, MethodChoice, ModelRef, SampleSetRef, SanityResponse, ScoresResponse, Target } from "./types";

export type ScoreResult = SampleScores | { error: string };

/** What sanity and agreement are asked about: every chosen model and method on the grid's samples. */
export interface GroupQuery {
  samples: SampleSetRef;
  models: ModelRef[];
  methods: MethodChoice[];
  indices: number[];
  target: Target;
  layer: string | null;
  neuron: number | null;
}

export class TrustData {
  private scores = new Map<string, ScoreResult>();
  private pending = new Map<string, Promise<void>>();
  private groups = new Map<string, Promise<unknown>>();

  constructor(
    private readonly data: DataModel,
    private readonly versions: Versions,
  ) {}

  private scoreKey(q: MapQuery, o: ScoreOptions, index: number): string {
    return JSON.stringify([mapKey(q, index, this.versions), o.fill, o.steps, o.region]);
  }

  cachedScores(q: MapQuery, o: ScoreOptions, index: number): ScoreResult | undefined {
    return this.scores.get(this.scoreKey(q, o, index));
  }

  /** Drop every cached error (and failed whole answers), so that the next load asks the server again. */
  forgetErrors(): void {
    for (const [key, value] of this.scores) if ("error" in value) this.scores.delete(key);
  }

  /** Fetch the scores of `q`'s maps on `indices` not cached yet (one request for the column), then resolve. */
  async loadScores(q: MapQuery, o: ScoreOptions, indices: number[]): Promise<void> {
    const waits: Promise<void>[] = [];
    const missing: number[] = [];
    for (const i of indices) {
      const key = this.scoreKey(q, o, i);
      if (this.scores.has(key)) continue;
      const p = this.pending.get(key);
      if (p) waits.push(p);
      else missing.push(i);
    }
    if (missing.length) {
      const job = this.fetchScores(q, o, missing);
      for (const i of missing) this.pending.set(this.scoreKey(q, o, i), job);
      waits.push(job);
    }
    await Promise.all(waits);
  }

  private fetchScores(q: MapQuery, o: ScoreOptions, indices: number[]): Promise<void> {
    return this.data.track("sc", indices.length, async (requestId) => {
      try {
        const body = { models: [q.model], samples: q.samples, indices, methods: [q.method], target: q.target, layer: q.layer, neuron: q.neuron };
        this.storeScores(q, o, indices, await postScores({ ...body, metrics: METRICS, ...o, request_id: requestId }));
      } catch (e) {
        if (!transient(e)) for (const i of indices) this.scores.set(this.scoreKey(q, o, i), { error: messageOf(e) });
        throw e;
      } finally {
        for (const i of indices) this.pending.delete(this.scoreKey(q, o, i));
      }
    });
  }

  /** Cache one column's answer: the scores per index, or the cell's error for each. */
  private storeScores(q: MapQuery, o: ScoreOptions, indices: number[], response: ScoresResponse): void {
    const expected = this.versions.samples(q.samples);
    if (expected && response.samples_sha256 && response.samples_sha256 !== expected) throw new StaleListingError();
    const cell = response.cells.find((c) => c.method === q.method.id) ?? response.cells[0];
    indices.forEach((index, k) =>
      this.scores.set(this.scoreKey(q, o, index), cell && cell.ok ? sampleScores(cell, k) : { error: cell?.error ?? "the server sent no scores" }),
    );
  }

  /** The request body of a group query. */
  private body(g: GroupQuery): AttributionsRequest {
    return { models: g.models, samples: g.samples, indices: g.indices, methods: g.methods, target: g.target, layer: g.layer, neuron: g.neuron };
  }

  /** The whole-request cache: one promise per (route, query, versions); a failed one is forgotten at once. */
  private group<T>(route: string, g: GroupQuery, units: number, fetch: (requestId: string) => Promise<T>): Promise<T> {
    const key = JSON.stringify([route, this.body(g), g.models.map((m) => this.versions.model(m)), this.versions.samples(g.samples)]);
    let p = this.groups.get(key) as Promise<T> | undefined;
    if (!p) {
      p = this.data.track(route.slice(0, 2), units, fetch);
      this.groups.set(key, p);
      p.catch(() => this.groups.delete(key));
    }
    return p;
  }

  /** Cascading randomization of every chosen model x method on the samples. */
  sanity(g: GroupQuery): Promise<SanityResponse> {
    return this.group("sanity", g, g.indices.length * g.methods.length * g.models.length, (id) => postSanity({ ...this.body(g), request_id: id }));
  }

  /** How much each method's maps changed between the first and the last checkpoint of `run` (`g.models`: the run's
   * checkpoints, which version the answer). */
  firstLast(run: string, g: GroupQuery): Promise<FirstLastResponse> {
    const { models: _, ...body } = this.body(g);
    return this.group(`first_last ${run}`, g, 2 * g.indices.length * g.methods.length, (id) => postFirstLast({ ...body, runs: [run], request_id: id }));
  }

  /** Rank agreement between the chosen methods (per model) and between the chosen models (per method). */
  agreement(g: GroupQuery): Promise<AgreementResponse> {
    return this.group("agreement", g, g.indices.length * g.methods.length * g.models.length, (id) => postAgreement({ ...this.body(g), request_id: id }));
  }
}
