// Run colours as TensorBoard 2.14-2.21 assigns them (its default palette, see docs/frontend.md): the
// runs in the order of TensorBoard's `data/runs` (first event time, then name) are grouped by the
// top URL's `runColorGroup` (default: one group per run); group k takes colour k modulo 7 in order
// of first appearance; runs that a regex grouping does not match take the inactive grey.
import type { Theme } from "./theme";

/** TensorBoard's default palette: [light, dark] hex per colour, in assignment order. */
export const PALETTE: [string, string][] = [
  ["#425066", "#8e98a3"], // slate
  ["#12b5cb", "#12b5cb"], // cyan
  ["#e52592", "#e52592"], // pink
  ["#f9ab00", "#f9ab00"], // yellow
  ["#9334e6", "#9334e6"], // purple
  ["#7cb342", "#7cb342"], // light green
  ["#e8710a", "#e8710a"], // orange
];
export const INACTIVE: [string, string] = ["#e0e0e0", "#3b3b3b"];

export type ColorGroup = { key: "run" } | { key: "experiment" } | { key: "regex"; regex: string };

/** The grouping a `runColorGroup` URL value names ('run', 'experiment', 'regex:<pattern>'); unknown -> by run. */
export function parseColorGroup(value: string | null): ColorGroup {
  if (value === "experiment") return { key: "experiment" };
  if (value?.startsWith("regex:")) return { key: "regex", regex: value.slice("regex:".length) };
  return { key: "run" };
}

/** Each run's colour index (-1: inactive) for runs in TensorBoard's order under a grouping. */
export function colorIds(runs: string[], group: ColorGroup): Map<string, number> {
  const ids = new Map<string, number>();
  const groups = new Map<string, number>();
  const join = (run: string, key: string) => {
    if (!groups.has(key)) groups.set(key, groups.size);
    ids.set(run, groups.get(key)!);
  };
  let regex: RegExp | null = null;
  if (group.key === "regex") {
    try {
      regex = group.regex ? new RegExp(group.regex) : null;
    } catch {
      regex = null;
    }
  }
  for (const run of runs) {
    if (group.key === "run") join(run, run);
    else if (group.key === "experiment") join(run, "");
    else {
      const m = regex ? run.match(regex) : null;
      if (m) join(run, m.length > 1 ? JSON.stringify(m.slice(1)) : "pseudo_group");
      else ids.set(run, -1); // TensorBoard leaves an unparsable or unmatched regex grouping grey
    }
  }
  return ids;
}

/** The hex colour of a colour index in a theme. */
export const colorOf = (id: number | undefined, theme: Theme): string => {
  const pair = id === undefined || id < 0 ? INACTIVE : PALETTE[id % PALETTE.length];
  return pair[theme === "dark" ? 1 : 0];
};

/** The top window's `runColorGroup` query parameter (null when absent or unreadable). */
export function urlColorGroup(win: Window = window): string | null {
  try {
    return new URLSearchParams(win.top!.location.search).get("runColorGroup");
  } catch {
    return null;
  }
}
