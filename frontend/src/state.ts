// The view's selection: one plain object, changed through a store, mirrored in the URL hash.
import { SCALE_CHOICES, type ScaleChoice } from "./heatmap";
import { FILLS, METRICS, type Fill, type ScatterAxis } from "./trust";
import type { Metric, MethodChoice, ModelRef, ParamValues, SampleSetRef, Target } from "./types";

export type HistogramSource = "p_true" | "activation";

export interface Filters {
  misclassified: boolean;
  trueClass: number | null;
  predictedClass: number | null;
  topMistakes: number | null;
}

/** The trust panel: which of its parts are on, and the score's metric and fill. */
export interface TrustState {
  scores: boolean;
  sanity: boolean;
  agreement: boolean;
  metric: Metric;
  fill: Fill;
}

export const DEFAULT_TRUST: TrustState = { scores: false, sanity: false, agreement: false, metric: "deletion", fill: "mean" };

export interface ViewState {
  samples: SampleSetRef | null;
  models: ModelRef[];
  methods: MethodChoice[];
  target: Target;
  layer: string | null;
  neuron: number | null;
  rows: number[];
  opacity: number;
  zoom: number;
  timelineRun: string | null;
  timelineStep: number | null;
  histogram: HistogramSource;
  filters: Filters;
  hparams: Record<string, string>; // hparam name -> chosen value ('' or absent: any)
  scale: ScaleChoice; // colours: each map over its own range, or one range per row, column, method or grid
  trust: TrustState;
  axis: ScatterAxis; // the suggestion scatter's y axis
}

export const DEFAULT_FILTERS: Filters = { misclassified: false, trueClass: null, predictedClass: null, topMistakes: null };

/** A state with nothing chosen yet. */
export function initialState(): ViewState {
  return {
    samples: null,
    models: [],
    methods: [],
    target: { kind: "predicted" },
    layer: null,
    neuron: null,
    rows: [0],
    opacity: 0.6,
    zoom: 1,
    timelineRun: null,
    timelineStep: null,
    histogram: "p_true",
    filters: { ...DEFAULT_FILTERS },
    hparams: {},
    scale: "own",
    trust: { ...DEFAULT_TRUST },
    axis: "classes",
  };
}

/** Observable state: listeners hear every update with the new and the previous state. */
export class Store {
  private listeners: ((s: ViewState, prev: ViewState) => void)[] = [];
  constructor(private state: ViewState) {}

  get(): ViewState {
    return this.state;
  }

  update(patch: Partial<ViewState>): void {
    const prev = this.state;
    this.state = { ...prev, ...patch };
    for (const fn of this.listeners) fn(this.state, prev);
  }

  /** Set the state without telling the listeners (the caller draws everything itself). */
  replace(state: ViewState): void {
    this.state = state;
  }

  subscribe(fn: (s: ViewState, prev: ViewState) => void): void {
    this.listeners.push(fn);
  }
}

/** Same model? */
export const sameModel = (a: ModelRef, b: ModelRef): boolean => a.run === b.run && a.step === b.step;

// --- URL hash: "#<tab>&xai=<encoded>". The key sits beside TensorBoard's own hash components. ---

const HASH_KEY = "xai";

/** The compact JSON the hash holds: short keys, only what differs from the initial state's meaning. */
export function encodeState(s: ViewState): string {
  const compact: Record<string, unknown> = {
    s: s.samples ? [s.samples.run, s.samples.name] : null,
    m: s.models.map((m) => [m.run, m.step]),
    a: s.methods.map((m) => [m.id, m.params]),
    t: s.target.kind === "class" ? s.target.index : s.target.kind,
    l: s.layer,
    n: s.neuron,
    r: s.rows,
    o: s.opacity,
    z: s.zoom,
    tr: s.timelineRun,
    ts: s.timelineStep,
    h: s.histogram,
    hp: s.hparams,
    sc: s.scale,
    y: s.axis,
    q: [s.trust.scores ? 1 : 0, s.trust.sanity ? 1 : 0, s.trust.agreement ? 1 : 0, s.trust.metric, s.trust.fill],
    f: [s.filters.misclassified ? 1 : 0, s.filters.trueClass, s.filters.predictedClass, s.filters.topMistakes],
  };
  return encodeURIComponent(JSON.stringify(compact));
}

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);
const isStr = (v: unknown): v is string => typeof v === "string";
const intOrNull = (v: unknown): number | null => (isInt(v) && v >= 0 ? v : null);

/** The state an encoded string describes; any field that does not parse keeps its initial value. */
export function decodeState(encoded: string): ViewState {
  const s = initialState();
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(decodeURIComponent(encoded));
  } catch {
    return s;
  }
  if (!c || typeof c !== "object") return s;
  if (Array.isArray(c.s) && isStr(c.s[0]) && isStr(c.s[1])) s.samples = { run: c.s[0], name: c.s[1] };
  if (Array.isArray(c.m))
    s.models = c.m.filter((m) => Array.isArray(m) && isStr(m[0]) && isInt(m[1])).map((m) => ({ run: m[0], step: m[1] }));
  if (Array.isArray(c.a))
    s.methods = c.a
      .filter((m) => Array.isArray(m) && isStr(m[0]))
      .map((m) => ({ id: m[0], params: validParams(m[1]) }));
  if (c.t === "predicted" || c.t === "label") s.target = { kind: c.t };
  else if (isInt(c.t) && c.t >= 0) s.target = { kind: "class", index: c.t };
  if (isStr(c.l)) s.layer = c.l;
  s.neuron = intOrNull(c.n);
  if (Array.isArray(c.r)) {
    const rows = c.r.filter((i) => isInt(i) && i >= 0) as number[];
    if (rows.length) s.rows = rows.slice(0, 64);
  }
  if (typeof c.o === "number" && c.o >= 0 && c.o <= 1) s.opacity = c.o;
  if (typeof c.z === "number" && c.z >= 0.5 && c.z <= 8) s.zoom = c.z;
  if (isStr(c.tr)) s.timelineRun = c.tr;
  s.timelineStep = isInt(c.ts) ? c.ts : null;
  if (c.h === "p_true" || c.h === "activation") s.histogram = c.h;
  if (SCALE_CHOICES.includes(c.sc as ScaleChoice)) s.scale = c.sc as ScaleChoice;
  if (c.hp && typeof c.hp === "object" && !Array.isArray(c.hp))
    s.hparams = Object.fromEntries(Object.entries(c.hp).filter(([, v]) => typeof v === "string")) as Record<string, string>;
  if (c.y === "classes" || c.y === "evidence") s.axis = c.y;
  if (Array.isArray(c.q))
    s.trust = {
      scores: c.q[0] === 1,
      sanity: c.q[1] === 1,
      agreement: c.q[2] === 1,
      metric: METRICS.includes(c.q[3] as Metric) ? (c.q[3] as Metric) : DEFAULT_TRUST.metric,
      fill: FILLS.includes(c.q[4] as Fill) ? (c.q[4] as Fill) : DEFAULT_TRUST.fill,
    };
  if (Array.isArray(c.f))
    s.filters = {
      misclassified: c.f[0] === 1,
      trueClass: intOrNull(c.f[1]),
      predictedClass: intOrNull(c.f[2]),
      topMistakes: isInt(c.f[3]) && c.f[3] > 0 ? c.f[3] : null,
    };
  return s;
}

/** Parameter values kept only when they are numbers, booleans or strings. */
function validParams(v: unknown): ParamValues {
  const out: ParamValues = {};
  if (v && typeof v === "object" && !Array.isArray(v))
    for (const [k, x] of Object.entries(v))
      if (typeof x === "number" || typeof x === "boolean" || typeof x === "string") out[k] = x;
  return out;
}

/** A hash with our key set to `encoded`, the other '&'-separated components kept in order. */
export function withStateInHash(hash: string, encoded: string): string {
  const parts = hash.replace(/^#/, "").split("&").filter((p) => p && !p.startsWith(HASH_KEY + "="));
  if (!parts.length) parts.push("xai");
  parts.push(`${HASH_KEY}=${encoded}`);
  return "#" + parts.join("&");
}

/** Our encoded state in a hash, or null. */
export function stateInHash(hash: string): string | null {
  const part = hash.replace(/^#/, "").split("&").find((p) => p.startsWith(HASH_KEY + "="));
  return part ? part.slice(HASH_KEY.length + 1) : null;
}

/** The window whose URL a person shares: TensorBoard's top window when reachable, else ours. */
function urlWindow(): Window {
  try {
    if (window.top && window.top !== window && window.top.location.href) return window.top;
  } catch {
    /* cross-origin: keep the state in the iframe's own URL */
  }
  return window;
}

/** The state in the URL, or the initial one. */
export function readUrlState(): ViewState {
  const encoded = stateInHash(urlWindow().location.hash) ?? stateInHash(window.location.hash);
  return encoded ? decodeState(encoded) : initialState();
}

/** Write the state into the URL without adding a history entry. */
export function writeUrlState(s: ViewState): void {
  const w = urlWindow();
  const hash = withStateInHash(w.location.hash, encodeState(s));
  if (hash !== w.location.hash) w.history.replaceState(w.history.state, "", hash);
}
