// Hyperparameters from TensorBoard's hparams plugin, to filter the model list. Sessions are runs
// (or run folders that hold runs); a run takes the hparams of the longest session name that is it
// or one of its parent folders.

export type HparamValue = string | number | boolean;
export type Hparams = Record<string, HparamValue>;

export interface SessionGroup {
  hparams?: Hparams;
  sessions?: { name: string }[];
}

/** session name -> its group's hparams. */
export function sessionHparams(groups: SessionGroup[]): Map<string, Hparams> {
  const out = new Map<string, Hparams>();
  for (const g of groups) for (const s of g.sessions ?? []) out.set(s.name, g.hparams ?? {});
  return out;
}

/** The hparams of `run`: its own session's, else the nearest parent folder's; null when none. */
export function runHparams(run: string, sessions: Map<string, Hparams>): Hparams | null {
  let best: string | null = null;
  for (const name of sessions.keys())
    if ((run === name || run.startsWith(name + "/") || name === "" || name === ".") && (best === null || name.length > best.length)) best = name;
  return best === null ? null : sessions.get(best)!;
}

/** Each hparam's distinct values over the sessions, sorted (numbers numerically), as strings. */
export function hparamDomains(sessions: Map<string, Hparams>): Record<string, string[]> {
  const values: Record<string, Map<string, HparamValue>> = {};
  for (const hp of sessions.values())
    for (const [k, v] of Object.entries(hp)) (values[k] ??= new Map()).set(String(v), v);
  const out: Record<string, string[]> = {};
  for (const k of Object.keys(values).sort())
    out[k] = [...values[k].entries()].sort(([, a], [, b]) => (typeof a === "number" && typeof b === "number" ? a - b : String(a).localeCompare(String(b)))).map(([s]) => s);
  return out;
}

/** Whether hparams `hp` satisfy every chosen value in `filter` (name -> value as a string). */
export function matchesHparams(hp: Hparams | null, filter: Record<string, string>): boolean {
  const chosen = Object.entries(filter).filter(([, v]) => v !== "");
  if (!chosen.length) return true;
  return hp !== null && chosen.every(([k, v]) => k in hp && String(hp[k]) === v);
}
