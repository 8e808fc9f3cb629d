import type { ApplicabilityResponse, LayerInfo, LayersResponse } from "./types";

/** What a model's head kind (GET layers' `head`, docs/heads.md) and a method's applicability mean, as the tab says them. */

export type HeadKind = "softmax" | "logits" | "binary_sigmoid" | "binary_logit" | "multilabel";

/** Whether a method applies to the model: true, false (with the reason), or null (unknown until a worker computed it). */
export interface Applicability {
  ok: boolean | null;
  reason?: string;
}

/** A one-line note on how the model's scores read, or "" where they read as usual (one softmax over the classes). */
export function headNote(head: string | null | undefined): string {
  if (head === "binary_sigmoid" || head === "binary_logit") return "binary model: p for the second class, 1 − p for the first; the first is explained through the negated logit";
  if (head === "multilabel") return "multi-label model: each label has its own probability (no softmax across labels), and each is its own target";
  return "";
}

/** The note under a method in the picker: null where it applies, the reason where not, and "unknown" where nobody knows yet. */
export function applicabilityNote(usable: Applicability | undefined): string | null {
  if (!usable || usable.ok === true) return null;
  if (usable.ok === null) return `may not apply: ${usable.reason ?? "unknown until computed"}`;
  return `not for this model: ${usable.reason || "unsupported"}`;
}

/** GET layers' answer with the methods (and the layers' folded marks, where the server sends them) a worker checked
 * on the loaded model in place of the manifest's guess. */
export function withApplicability(layers: LayersResponse, checked: ApplicabilityResponse): LayersResponse {
  const marked = checked.layers ? { layers: checked.layers, default_layer: checked.default_layer ?? null, folded_layers: checked.folded_layers ?? null } : {};
  return { ...layers, ...marked, methods: checked.methods, methods_from: "model" };
}

/** A layer as the picker offers it: greyed out (disabled) with the reason as its title where the backend folded it. */
export function layerChoice(layer: LayerInfo, defaultLayer: string | null | undefined): { label: string; disabled: boolean; title: string | null } {
  const folded = layer.folded === true;
  const label = `${layer.name} (${layer.type} ${layer.output_shape.join("x")})${layer.name === defaultLayer ? " — default" : ""}${folded ? " — folded into the preprocessing" : ""}`;
  return { label, disabled: folded, title: folded ? (layer.reason ?? "folded into the recorded preprocessing") : null };
}
