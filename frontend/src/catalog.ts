// Lookups over GET runs: sample sets, their sizes and class names. Pure functions.
import type { ModelRef, RunInfo, SampleSet, SampleSetRef } from "./types";

/** The sample set `ref` names, if it exists. */
export function sampleSetOf(runs: RunInfo[], ref: SampleSetRef | null): SampleSet | undefined {
  return ref ? runs.find((r) => r.run === ref.run)?.sample_sets.find((x) => x.name === ref.name) : undefined;
}

/** How many samples `ref` holds (0 when it does not exist). */
export const sampleCount = (runs: RunInfo[], ref: SampleSetRef | null): number => sampleSetOf(runs, ref)?.count ?? 0;

/** The sample set's class names, else 'class i' for each of the model's classes, else none. */
export function classNames(runs: RunInfo[], ref: SampleSetRef | null, model: ModelRef | undefined): string[] {
  const names = sampleSetOf(runs, ref)?.class_names;
  if (names && names.length) return names;
  const n = model ? runs.find((r) => r.run === model.run)?.checkpoints.find((c) => c.step === model.step)?.num_classes ?? 0 : 0;
  return Array.from({ length: n }, (_, i) => `class ${i}`);
}
