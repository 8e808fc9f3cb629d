// Over training: one run, a slider over its checkpoint steps.
import type { RunInfo } from "../types";
import { h } from "./dom";

export interface TimelineOptions {
  runs: RunInfo[];
  run: RunInfo | null;
  step: number | null;
  onRun: (run: string) => void;
  onStep: (step: number) => void;
  runColor: (run: string) => string;
}

/** Controls: a run picker and a range input over the run's steps (by position, labelled by step). */
export function timelineControls(o: TimelineOptions): HTMLElement {
  const runSelect = h(
    "select",
    { id: "xai-timeline-run", onchange: (e) => o.onRun((e.target as HTMLSelectElement).value) },
    ...o.runs.filter((r) => r.checkpoints.length).map((r) => h("option", { value: r.run, selected: r.run === o.run?.run }, r.run)),
  );
  const runLabel = h("label", { for: "xai-timeline-run", class: "xai-label" }, "run");
  if (!o.run || !o.run.checkpoints.length) return h("div", { class: "xai-toolbar" }, runLabel, runSelect, h("span", { class: "xai-empty" }, "no checkpoints"));
  const steps = o.run.checkpoints.map((c) => c.step);
  const pos = Math.max(0, o.step === null ? steps.length - 1 : steps.indexOf(o.step));
  const label = h("span", { id: "xai-timeline-step" }, `step ${steps[pos]} (${pos + 1} of ${steps.length})`);
  const slider = h("input", {
    id: "xai-timeline-slider",
    type: "range",
    min: 0,
    max: steps.length - 1,
    step: 1,
    value: pos,
    "aria-valuetext": `step ${steps[pos]}`,
    oninput: (e) => {
      const p = +(e.target as HTMLInputElement).value;
      label.textContent = `step ${steps[p]} (${p + 1} of ${steps.length})`;
      (e.target as HTMLInputElement).setAttribute("aria-valuetext", `step ${steps[p]}`);
    },
    onchange: (e) => o.onStep(steps[+(e.target as HTMLInputElement).value]),
  });
  const swatch = h("span", { class: "xai-swatch", "aria-hidden": "true", "data-run": o.run.run, style: `background:${o.runColor(o.run.run)}` });
  return h(
    "div",
    { class: "xai-toolbar" },
    runLabel,
    swatch,
    runSelect,
    h("label", { for: "xai-timeline-slider", class: "xai-label" }, "checkpoint"),
    slider,
    label,
  );
}

/** At most k steps spread evenly over `steps`, the first and the last always included. */
export function spreadSteps(steps: number[], k: number): number[] {
  if (steps.length <= k) return steps.slice();
  if (k <= 1) return steps.slice(-1);
  const picked = new Set<number>();
  for (let j = 0; j < k; j++) picked.add(Math.round((j * (steps.length - 1)) / (k - 1)));
  return [...picked].sort((a, b) => a - b).map((i) => steps[i]);
}
