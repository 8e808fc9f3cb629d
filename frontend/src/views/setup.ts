// The setup bar: sample set, models (runs x steps), methods with their parameters, layer, neuron, target.
import { applicabilityNote, headNote, layerChoice } from "../heads";
import type { ViewState } from "../state";
import type { LayersResponse, MethodChoice, MethodInfo, ModelRef, ParamSpec, ParamValues, RunInfo, Target } from "../types";
import { h, replaceChildren } from "./dom";
import { hparamDomains, matchesHparams, runHparams, type Hparams } from "../hparams";

export interface SetupData {
  runs: RunInfo[];
  sessions: Map<string, Hparams>;
  methods: MethodInfo[];
  layers: LayersResponse | null;
  classNames: string[];
  runColor: (run: string) => string;
}

export interface SetupActions {
  update: (patch: Partial<ViewState>) => void;
}

/** An element id from free-form parts (run names, method ids): each part URI-encoded with its "-" too, so the
 * "-" between parts is unambiguous and ids never collide. */
export const controlId = (...parts: (string | number)[]): string =>
  ["xai", ...parts.map((p) => encodeURIComponent(String(p)).replace(/-/g, "%2D"))].join("-");

/** The latest checkpoint step of a run, or null when it has none. */
export const latestStep = (run: RunInfo): number | null => (run.checkpoints.length ? run.checkpoints[run.checkpoints.length - 1].step : null);

/** The default parameter values of a method, from its schema. */
export const defaultParams = (m: MethodInfo): ParamValues => Object.fromEntries(m.params.map((p) => [p.name, p.default]));

/** Runs whose name matches `pattern` as TensorBoard's run filter does (a case-insensitive regex, empty: all);
 * an invalid pattern matches none and says why. */
export function filterRuns(runs: RunInfo[], pattern: string): { runs: RunInfo[]; error: string | null } {
  if (!pattern) return { runs, error: null };
  let regex: RegExp;
  try {
    regex = new RegExp(pattern, "i");
  } catch (e) {
    return { runs: [], error: `not a valid regular expression: ${(e as Error).message}` };
  }
  return { runs: runs.filter((r) => regex.test(r.run)), error: null };
}

export class SetupView {
  readonly el: HTMLElement;
  private runFilter = "";

  constructor(private readonly actions: SetupActions) {
    this.el = h("div", { class: "xai-panel xai-setup", id: "xai-setup" });
  }

  render(data: SetupData, s: ViewState): void {
    const focused = document.activeElement as HTMLInputElement | null;
    const focusId = focused && this.el.contains(focused) ? focused.id : null;
    const caret = focusId && typeof focused!.selectionStart === "number" ? focused!.selectionStart : null;
    replaceChildren(this.el, this.samplesField(data, s), this.modelsField(data, s), this.methodsField(data, s), this.paramsField(data, s), this.layerField(data, s), this.targetField(data, s));
    if (focusId) {
      const again = this.el.ownerDocument.getElementById(focusId) as HTMLInputElement | null;
      again?.focus();
      if (again && caret !== null && again.type === "text") again.setSelectionRange(caret, caret);
    }
  }

  private samplesField(data: SetupData, s: ViewState): HTMLElement {
    const options = data.runs.flatMap((r) =>
      r.sample_sets.map((set) => {
        const value = JSON.stringify([r.run, set.name]);
        const selected = s.samples?.run === r.run && s.samples?.name === set.name;
        return h("option", { value, selected }, `${r.run} / ${set.name} (${set.count}${set.has_labels ? ", labelled" : ""})`);
      }),
    );
    const select = h(
      "select",
      {
        id: "xai-samples",
        onchange: (e) => {
          const [run, name] = JSON.parse((e.target as HTMLSelectElement).value);
          this.actions.update({ samples: { run, name }, rows: [0] });
        },
      },
      ...options,
    );
    return h("div", { class: "xai-field" }, h("label", { for: "xai-samples" }, "Sample set"), options.length ? select : h("span", { class: "xai-empty" }, "no sample sets logged"));
  }

  private modelsField(data: SetupData, s: ViewState): HTMLElement {
    const filtered = filterRuns(data.runs, this.runFilter);
    const shown = filtered.runs.filter((r) => r.checkpoints.length && matchesHparams(runHparams(r.run, data.sessions), s.hparams));
    const isOn = (m: ModelRef) => s.models.some((x) => x.run === m.run && x.step === m.step);
    const toggle = (m: ModelRef) =>
      this.actions.update({ models: isOn(m) ? s.models.filter((x) => !(x.run === m.run && x.step === m.step)) : [...s.models, m] });
    const rows = shown.map((r) => {
      const any = s.models.some((m) => m.run === r.run);
      const latest = latestStep(r)!;
      const box = h("input", {
        type: "checkbox",
        id: controlId("run", r.run),
        class: "xai-run-check",
        "data-run": r.run,
        checked: any,
        title: "latest checkpoint of this run",
        "aria-describedby": `xai-run-hint`,
        onchange: () => this.actions.update({ models: any ? s.models.filter((m) => m.run !== r.run) : [...s.models, { run: r.run, step: latest }] }),
      });
      const chips = r.checkpoints.map((c) =>
        h(
          "button",
          {
            class: "xai-chip",
            id: controlId("chip", r.run, c.step),
            "aria-pressed": String(isOn({ run: r.run, step: c.step })),
            "aria-label": `${r.run} step ${c.step}`,
            "data-run": r.run,
            "data-step": c.step,
            title: `${c.model_name}, step ${c.step}`,
            onclick: () => toggle({ run: r.run, step: c.step }),
          },
          String(c.step),
        ),
      );
      const hp = runHparams(r.run, data.sessions);
      const title = hp ? Object.entries(hp).map(([k, v]) => `${k} = ${v}`).join(", ") : "";
      const swatch = h("span", { class: "xai-swatch", "aria-hidden": "true", "data-run": r.run, style: `background:${data.runColor(r.run)}` });
      return h("div", { class: "xai-run" }, h("label", { title, class: "xai-run-name" }, box, swatch, r.run), ...chips);
    });
    const filter = h("input", {
      id: "xai-run-filter",
      type: "text",
      placeholder: "regex",
      value: this.runFilter,
      "aria-invalid": filtered.error ? "true" : null,
      "aria-describedby": filtered.error ? "xai-run-filter-error" : null,
      oninput: (e) => {
        this.runFilter = (e.target as HTMLInputElement).value;
        this.render(data, s);
      },
    });
    const all = h(
      "button",
      {
        class: "xai-btn",
        id: "xai-select-all",
        onclick: () => {
          const add = shown.filter((r) => !s.models.some((m) => m.run === r.run)).map((r) => ({ run: r.run, step: latestStep(r)! }));
          this.actions.update({ models: [...s.models, ...add] });
        },
      },
      "Select all",
    );
    const none = h("button", { class: "xai-btn", onclick: () => this.actions.update({ models: [] }) }, "Clear");
    return h(
      "div",
      { class: "xai-field", role: "group", "aria-labelledby": "xai-models-title" },
      h("span", { class: "xai-label", id: "xai-models-title" }, `Models (${s.models.length} chosen)`),
      h("span", { class: "xai-hidden", id: "xai-run-hint" }, "its latest checkpoint"),
      h("div", { style: "display:flex;gap:4px;align-items:center" }, h("label", { for: "xai-run-filter" }, "Filter runs"), filter, all, none),
      filtered.error ? h("div", { class: "xai-error", id: "xai-run-filter-error", role: "alert" }, filtered.error) : null,
      this.hparamFilters(data, s),
      h("div", { class: "xai-runs" }, ...(rows.length ? rows : [h("span", { class: "xai-empty" }, "no run with checkpoints matches")])),
    );
  }

  /** One select per hparam (values seen in the sessions), narrowing the run list. */
  private hparamFilters(data: SetupData, s: ViewState): HTMLElement | null {
    const domains = Object.entries(hparamDomains(data.sessions));
    if (!domains.length) return null;
    return h(
      "div",
      { class: "xai-hparams", style: "display:flex;flex-wrap:wrap;gap:4px 10px;font-size:12px" },
      ...domains.map(([name, values]) =>
        h(
          "label",
          {},
          `${name} `,
          h(
            "select",
            { id: controlId("hparam", name), "data-hparam": name, onchange: (e) => this.actions.update({ hparams: { ...s.hparams, [name]: (e.target as HTMLSelectElement).value } }) },
            h("option", { value: "" }, "any"),
            ...values.map((v) => h("option", { value: v, selected: s.hparams[name] === v }, v)),
          ),
        ),
      ),
    );
  }

  private methodsField(data: SetupData, s: ViewState): HTMLElement {
    const families = [...new Set(data.methods.map((m) => m.family))];
    const item = (m: MethodInfo) => {
      const chosen = s.methods.find((c) => c.id === m.id);
      const box = h("input", {
        type: "checkbox",
        id: `xai-method-${m.id.replace(/[^A-Za-z0-9_-]/g, "_")}`,
        "data-method": m.id,
        checked: Boolean(chosen),
        onchange: () =>
          this.actions.update({
            methods: chosen ? s.methods.filter((c) => c.id !== m.id) : [...s.methods, { id: m.id, params: defaultParams(m) }],
          }),
      });
      const usable = data.layers?.methods?.[m.id];
      return h(
        "div",
        {},
        h("label", { title: m.description }, box, ` ${m.label}`),
        applicabilityNote(usable) ? h("div", { class: "xai-warn" }, applicabilityNote(usable)) : null,
      );
    };
    const groups = families.map((f) => h("div", {}, h("div", { class: "xai-family" }, f), ...data.methods.filter((m) => m.family === f).map(item)));
    return h(
      "div",
      { class: "xai-field", role: "group", "aria-labelledby": "xai-methods-title" },
      h("span", { class: "xai-label", id: "xai-methods-title" }, `Methods (${s.methods.length} chosen)`),
      headNote(data.layers?.head) ? h("div", { class: "xai-head-note", "data-head": data.layers?.head ?? "" }, headNote(data.layers?.head)) : null,
      h("div", { class: "xai-methods" }, ...groups),
    );
  }

  /** Controls for the chosen methods that have parameters, built from their schemas. */
  private paramsField(data: SetupData, s: ViewState): HTMLElement | null {
    const chosen = s.methods
      .map((c) => ({ c, m: data.methods.find((m) => m.id === c.id) }))
      .filter((x): x is { c: MethodChoice; m: MethodInfo } => !!x.m && x.m.params.length > 0);
    if (!chosen.length) return null;
    return h(
      "div",
      { class: "xai-field", role: "group", "aria-labelledby": "xai-params-title" },
      h("span", { class: "xai-label", id: "xai-params-title" }, "Parameters"),
      ...chosen.map(({ c, m }) => h("div", {}, h("div", { class: "xai-family" }, m.label), this.paramControls(m, c, s))),
    );
  }

  private paramControls(m: MethodInfo, chosen: MethodChoice, s: ViewState): HTMLElement {
    const set = (name: string, value: number | boolean | string) =>
      this.actions.update({ methods: s.methods.map((c) => (c.id === m.id ? { id: c.id, params: { ...c.params, [name]: value } } : c)) });
    return h("div", { class: "xai-method-params" }, ...m.params.map((p) => paramControl(p, chosen.params[p.name] ?? p.default, (v) => set(p.name, v), m.id)));
  }

  private layerField(data: SetupData, s: ViewState): HTMLElement | null {
    const chosen = data.methods.filter((m) => s.methods.some((c) => c.id === m.id));
    const needsLayer = chosen.some((m) => m.takes_layer);
    const needsNeuron = chosen.some((m) => m.takes_neuron);
    if (!needsLayer && !needsNeuron) return null;
    const layers = data.layers?.layers ?? [];
    const current = s.layer ?? data.layers?.default_layer ?? "";
    const select = h(
      "select",
      { id: "xai-layer", onchange: (e) => this.actions.update({ layer: (e.target as HTMLSelectElement).value || null, neuron: null }) },
      ...layers.map((l) => {
        const choice = layerChoice(l, data.layers?.default_layer);
        return h("option", { value: l.name, selected: l.name === current, disabled: choice.disabled, title: choice.title }, choice.label);
      }),
    );
    const layer = layers.find((l) => l.name === current);
    const channels = layer ? layer.output_shape[layer.output_shape.length - 1] : null;
    const neuron = h("input", {
      id: "xai-neuron",
      type: "number",
      min: 0,
      max: channels !== null ? channels - 1 : null,
      placeholder: "all",
      value: s.neuron ?? "",
      onchange: (e) => {
        const v = (e.target as HTMLInputElement).value;
        this.actions.update({ neuron: v === "" ? null : Math.max(0, Math.floor(+v)) });
      },
    });
    return h(
      "div",
      { class: "xai-field" },
      h("label", { for: "xai-layer" }, "Layer"),
      select,
      needsNeuron ? h("label", { for: "xai-neuron" }, `Neuron (channel${channels ? ` 0-${channels - 1}` : ""})`) : null,
      needsNeuron ? neuron : null,
    );
  }

  private targetField(data: SetupData, s: ViewState): HTMLElement {
    const kind = h(
      "select",
      {
        id: "xai-target",
        onchange: (e) => {
          const v = (e.target as HTMLSelectElement).value;
          this.actions.update({ target: v === "class" ? { kind: "class", index: 0 } : ({ kind: v } as Target) });
        },
      },
      h("option", { value: "predicted", selected: s.target.kind === "predicted" }, "predicted class"),
      h("option", { value: "label", selected: s.target.kind === "label" }, "true label"),
      h("option", { value: "class", selected: s.target.kind === "class" }, "a chosen class…"),
    );
    const listId = "xai-class-names";
    const current = s.target.kind === "class" ? s.target.index : null;
    const search =
      s.target.kind === "class"
        ? h("input", {
            id: "xai-class",
            class: "xai-classlist",
            type: "text",
            list: listId,
            placeholder: "search classes",
            value: current !== null ? classOption(current, data.classNames) : "",
            onchange: (e) => {
              const index = parseClassOption((e.target as HTMLInputElement).value, data.classNames);
              if (index !== null) this.actions.update({ target: { kind: "class", index } });
            },
          })
        : null;
    const datalist = h("datalist", { id: listId }, ...data.classNames.map((_, i) => h("option", { value: classOption(i, data.classNames) })));
    return h(
      "div",
      { class: "xai-field" },
      h("label", { for: "xai-target" }, "Target"),
      kind,
      search ? h("label", { for: "xai-class" }, "Class") : null,
      search,
      search ? datalist : null,
    );
  }
}

/** "index: name" as the class search lists it. */
export const classOption = (i: number, names: string[]): string => `${i}: ${names[i] ?? `class ${i}`}`;

/** The class index a search entry names ("3: cat", "3" or an exact class name), or null. */
export function parseClassOption(text: string, names: string[]): number | null {
  const t = text.trim();
  const m = /^(\d+)(:|$)/.exec(t);
  const index = m ? +m[1] : names.findIndex((n) => n.toLowerCase() === t.toLowerCase());
  return index >= 0 && index < Math.max(names.length, 1) ? index : null;
}

/** One parameter's control, built from its schema. */
function paramControl(p: ParamSpec, value: number | boolean | string, set: (v: number | boolean | string) => void, methodId: string): HTMLElement {
  const label = p.label || p.name;
  const data = { "data-method": methodId, "data-param": p.name, id: controlId("param", methodId, p.name) };
  if (p.type === "bool")
    return h("label", {}, h("input", { type: "checkbox", checked: Boolean(value), ...data, onchange: (e) => set((e.target as HTMLInputElement).checked) }), ` ${label}`);
  if (p.type === "choice")
    return h(
      "label",
      {},
      `${label} `,
      h("select", { ...data, onchange: (e) => set(coerceChoice((e.target as HTMLSelectElement).value, p)) }, ...(p.choices ?? []).map((c) => h("option", { value: String(c), selected: c === value }, String(c)))),
    );
  const input = h("input", {
    type: "number",
    ...data,
    min: p.min ?? null,
    max: p.max ?? null,
    step: p.type === "int" ? 1 : "any",
    value: String(value),
    onchange: (e) => {
      const el = e.target as HTMLInputElement;
      const v = clampParam(+el.value, p);
      if (v === null) el.value = String(value);
      else set(v);
    },
  });
  return h("label", {}, `${label} `, input);
}

/** A choice's value with its original type (numbers stay numbers). */
const coerceChoice = (text: string, p: ParamSpec): string | number => (p.choices ?? []).find((c) => String(c) === text) ?? text;

/** v clamped to the parameter's range (rounded for int), or null when it is not a number. */
export function clampParam(v: number, p: ParamSpec): number | null {
  if (!Number.isFinite(v)) return null;
  let out = p.type === "int" ? Math.round(v) : v;
  if (p.min !== null && p.min !== undefined) out = Math.max(p.min, out);
  if (p.max !== null && p.max !== undefined) out = Math.min(p.max, out);
  return out;
}
