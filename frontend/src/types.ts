// The JSON shapes of docs/http_api.md, one interface per response.

export interface ModelRef {
  run: string;
  step: number;
}

export interface SampleSetRef {
  run: string;
  name: string;
}

export interface Checkpoint {
  step: number;
  model_name: string;
  input_shape: number[];
  num_classes: number;
  head?: string; // docs/heads.md: softmax, logits, binary_sigmoid, binary_logit, multilabel
  wall_time: number;
  version: string; // the checkpoint's content checksum
}

export interface SampleSet {
  name: string;
  count: number;
  image_shape: number[];
  has_labels: boolean;
  class_names: string[] | null;
  sha256: string; // of its data file: the version of its image URLs
}

export interface RunInfo {
  run: string;
  checkpoints: Checkpoint[];
  sample_sets: SampleSet[];
}

export interface RunsResponse {
  runs: RunInfo[];
  /** What of the logdir could not be listed or read (absent from servers before it was reported). */
  errors?: ListingError[];
}

/** One listing error of GET runs: its run (null: the whole logdir) and the sentence to show. */
export interface ListingError {
  run: string | null;
  message: string;
}

export type ParamType = "int" | "float" | "bool" | "choice";

export interface ParamSpec {
  name: string;
  type: ParamType;
  default: number | boolean | string;
  label?: string;
  min?: number | null;
  max?: number | null;
  choices?: (string | number)[];
}

export interface MethodInfo {
  id: string;
  label: string;
  family: string;
  description: string;
  signed: boolean;
  takes_layer: boolean;
  takes_neuron: boolean;
  sampling?: boolean;
  params: ParamSpec[];
}

export interface MethodsResponse {
  methods: MethodInfo[];
}

export interface LayerInfo {
  name: string;
  type: string;
  output_shape: (number | null)[];
  conv: boolean;
  /** folded into the recorded preprocessing (refused by name), false, or null: unknown until a worker looked (docs/http_api.md) */
  folded?: boolean | null;
  /** why it cannot be chosen, when folded */
  reason?: string;
}

export interface LayersResponse {
  layers: LayerInfo[];
  default_layer: string | null;
  /** the layers the backend folded into the recorded preprocessing; null: unknown until a worker looked */
  folded_layers?: string[] | null;
  /** ok null: unknown until a worker computed it (methods_from "manifest"); see docs/http_api.md */
  methods: Record<string, { ok: boolean | null; reason?: string }>;
  head?: string;
  class_names?: string[];
  methods_from?: "model" | "manifest";
}

/** POST applicability: the worker's answer on the loaded model (docs/http_api.md). */
export interface ApplicabilityResponse {
  run: string;
  step: number;
  methods: LayersResponse["methods"];
  methods_from: "model";
  /** the manifest's layers with their folded marks, the default layer, and the folded layers (absent from older servers) */
  layers?: LayerInfo[];
  default_layer?: string | null;
  folded_layers?: string[] | null;
}

export type Target = { kind: "predicted" } | { kind: "label" } | { kind: "class"; index: number };

export type ParamValues = Record<string, number | boolean | string>;

export interface MethodChoice {
  id: string;
  params: ParamValues;
}

export interface ModelPredictions {
  run: string;
  step: number;
  ok: boolean;
  error?: string;
  top_classes?: number[][];
  top_scores?: number[][];
}

export interface PredictionsResponse {
  indices: number[];
  labels: number[] | null;
  models: ModelPredictions[];
}

export interface AttributionCell {
  run: string;
  step: number;
  method: string;
  ok: boolean;
  error?: string;
  shape?: number[];
  data?: string;
  range?: [number, number]; // over every map of the cell
  ranges?: [number, number][]; // each map's own
  signed?: boolean;
  version?: string;
  targets?: number[];
  scores?: number[];
}

export interface AttributionsResponse {
  samples_sha256?: string;
  cells: AttributionCell[];
}

export interface ModelStats {
  run: string;
  step: number;
  ok: boolean;
  error?: string;
  predicted?: number[];
  top_score?: number[];
  p_true?: number[] | null;
}

export interface SuggestionsResponse {
  count: number;
  labels: number[] | null;
  per_model: ModelStats[];
  per_sample: {
    mean_top_score: number[];
    distinct_classes: number[];
    majority_right: (boolean | null)[] | null;
    entropy?: number[];
    evidence_disagreement?: (number | null)[]; // with "evidence": 1 - mean pairwise rho of the models' maps
  };
  evidence?: { method: string; params?: Record<string, unknown>; max_samples: number; covered: number; indices: number[]; agreeing: number };
  activation: { layer: string; neuron: number | null; mean: number[] } | null;
}

export interface ProgressResponse {
  request_id: string;
  state: "running" | "done" | "cancelled" | "unknown";
  done: number;
  total: number;
}

// --- which map to believe: faithfulness scores, sanity checks, agreement (docs/http_api.md) ---

export type Metric = "deletion" | "insertion" | "morf" | "lerf";

export interface MetricScores {
  auc: number[]; // per sample index of the request
  random_auc: number[];
  curves?: number[][]; // [steps + 1] per sample
  random_curves?: number[][];
  better: "lower" | "higher";
}

export interface ScoreCell {
  run: string;
  step: number;
  method: string;
  ok: boolean;
  error?: string;
  scores?: Partial<Record<Metric, MetricScores>>;
}

export interface ScoresResponse {
  samples_sha256?: string;
  cells: ScoreCell[];
}

export interface SanityCell {
  run: string;
  step: number;
  method: string;
  ok: boolean;
  error?: string;
  stages?: string[]; // the lowest layer randomized by each stage
  randomized?: number[]; // how many layers each stage has randomized, from the output down
  correlations?: (number | null)[][]; // [stage][sample]; null: a constant map
  mean?: (number | null)[]; // per stage
  badge?: boolean;
  threshold?: number;
}

export interface SanityResponse {
  threshold?: number;
  randomization?: string; // "permute": each weight array shuffled; "init": drawn anew
  cells: SanityCell[];
}

export interface FirstLastCell {
  run: string;
  method: string;
  first: number;
  last: number;
  ok: boolean;
  error?: string;
  correlations?: (number | null)[]; // per sample
  mean?: number | null;
}

export interface FirstLastResponse {
  indices?: number[];
  cells: FirstLastCell[];
}

export interface MethodAgreement {
  run: string;
  step: number;
  ok?: boolean;
  error?: string;
  methods?: string[];
  matrix: (number | null)[][]; // K x K, mean over samples; null: a map failed or is constant
  per_sample?: (number | null)[][][]; // [sample][K][K]
}

export interface ModelAgreement {
  method: string;
  ok?: boolean;
  error?: string;
  models?: ModelRef[];
  matrix: (number | null)[][]; // M x M, mean over samples
  per_sample?: (number | null)[][][];
}

export interface AgreementResponse {
  indices?: number[];
  methods: MethodAgreement[];
  models: ModelAgreement[];
  errors?: { run: string; step: number; method: string; error: string }[];
}
