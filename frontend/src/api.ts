// Typed fetchers for the plugin's routes (docs/http_api.md). Relative URLs only: the iframe's
// base is /data/plugin/xai/, which also holds behind --path_prefix.
import type { SessionGroup } from "./hparams";
import type {
  ApplicabilityResponse,
  AttributionsResponse,
  LayersResponse,
  MethodChoice,
  MethodsResponse,
  ModelRef,
  PredictionsResponse,
  ProgressResponse,
  RunsResponse,
  AgreementResponse,
  FirstLastResponse,
  Metric,
  SanityResponse,
  SampleSetRef,
  ScoresResponse,
  SuggestionsResponse,
  Target,
} from "./types";

/** A failed request, with the server's sentence (or a plain one) for the person. */
export class ApiError extends Error {
  constructor(message: string, readonly status: number) {
    super(message);
    this.name = "ApiError";
  }
  get cancelled(): boolean {
    return this.status === 409;
  }
}

let base = "./";

/** Where the routes live; tests and benches may point it elsewhere. */
export function setBase(url: string): void {
  base = url.endsWith("/") ? url : url + "/";
}

/** The message of an error body {"error": ...}, else a sentence naming the status. */
async function errorOf(response: Response): Promise<ApiError> {
  let message = `the server answered ${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && typeof body.error === "string") message = body.error;
  } catch {
    /* not JSON: keep the status sentence */
  }
  return new ApiError(message, response.status);
}

/** GET `route` and parse its JSON body, or throw ApiError. */
async function getJson<T>(route: string, signal?: AbortSignal): Promise<T> {
  let response: Response;
  try {
    response = await fetch(base + route, { signal });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError("the TensorBoard server cannot be reached", 0);
  }
  if (!response.ok) throw await errorOf(response);
  return (await response.json()) as T;
}

/** POST `body` as JSON with the X-XAI-Request header and parse the answer, or throw ApiError. */
async function postJson<T>(route: string, body: unknown, signal?: AbortSignal): Promise<T> {
  let response: Response;
  try {
    response = await fetch(base + route, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-XAI-Request": "1" },
      body: JSON.stringify(body),
      signal,
    });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiError("the TensorBoard server cannot be reached", 0);
  }
  if (!response.ok) throw await errorOf(response);
  return (await response.json()) as T;
}

export const getRuns = (): Promise<RunsResponse> => getJson("runs");

export const getMethods = (): Promise<MethodsResponse> => getJson("methods");

export const getLayers = (model: ModelRef): Promise<LayersResponse> =>
  getJson(`layers?run=${encodeURIComponent(model.run)}&step=${model.step}`);

/** Which methods apply to one model, from a worker's look at the loaded model (GET layers only reads the cached answer). */
export const postApplicability = (model: ModelRef, signal?: AbortSignal): Promise<ApplicabilityResponse> =>
  postJson("applicability", { run: model.run, step: model.step }, signal);

/** TensorBoard's hparams session groups (its own plugin's route, beside ours); [] when it has none. */
export async function getSessionGroups(): Promise<SessionGroup[]> {
  const request = JSON.stringify({ startIndex: 0, sliceSize: 100000, allowedStatuses: ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"] });
  const body = await getJson<{ sessionGroups?: SessionGroup[] }>(`../hparams/session_groups?request=${encodeURIComponent(request)}`);
  return body.sessionGroups ?? [];
}

/** TensorBoard's own run list (`data/runs`, two folders above our routes), in the order its run colours follow. */
export const getTensorBoardRuns = (): Promise<string[]> => getJson("../../runs");

export const getProgress = (requestId: string): Promise<ProgressResponse> =>
  getJson(`progress?request_id=${encodeURIComponent(requestId)}`);

/** URL of one sample's PNG, versioned by the set's sha256 (the server lets browsers keep only versioned ones). */
export function imageUrl(samples: SampleSetRef, index: number, sha256: string): string {
  const version = sha256 ? `&v=${encodeURIComponent(sha256)}` : "";
  return `${base}image?run=${encodeURIComponent(samples.run)}&samples=${encodeURIComponent(samples.name)}&index=${index}${version}`;
}

export interface PredictionsRequest {
  models: ModelRef[];
  samples: SampleSetRef;
  indices?: number[];
  top_k: number;
}

export const postPredictions = (req: PredictionsRequest, signal?: AbortSignal): Promise<PredictionsResponse> =>
  postJson("predictions", req, signal);

export interface AttributionsRequest {
  models: ModelRef[];
  samples: SampleSetRef;
  indices: number[];
  methods: MethodChoice[];
  target: Target;
  layer: string | null;
  neuron: number | null;
  request_id?: string;
}

export const postAttributions = (req: AttributionsRequest, signal?: AbortSignal): Promise<AttributionsResponse> =>
  postJson("attributions", req, signal);

export interface SuggestionsRequest {
  models: ModelRef[];
  samples: SampleSetRef;
  layer: string | null;
  neuron: number | null;
  request_id?: string;
  evidence?: boolean; // also the evidence axis: models agree on the label but not on the evidence
}

export const postSuggestions = (req: SuggestionsRequest, signal?: AbortSignal): Promise<SuggestionsResponse> =>
  postJson("suggestions", req, signal);

export interface ScoresRequest extends AttributionsRequest {
  metrics: Metric[];
  fill: string;
  steps: number;
  region: number;
}

export const postScores = (req: ScoresRequest, signal?: AbortSignal): Promise<ScoresResponse> => postJson("scores", req, signal);

export const postSanity = (req: AttributionsRequest, signal?: AbortSignal): Promise<SanityResponse> => postJson("sanity", req, signal);

/** An attributions request that names runs (their first and last checkpoints) instead of models. */
export type FirstLastRequest = Omit<AttributionsRequest, "models"> & { runs: string[] };

export const postFirstLast = (req: FirstLastRequest, signal?: AbortSignal): Promise<FirstLastResponse> => postJson("first_last", req, signal);

export const postAgreement = (req: AttributionsRequest, signal?: AbortSignal): Promise<AgreementResponse> => postJson("agreement", req, signal);

export const postCancel = (requestId: string): Promise<{ cancelled: boolean }> =>
  postJson("cancel", { request_id: requestId });

let counter = 0;

/** A fresh request id matching [A-Za-z0-9_-]{1,64}. */
export function newRequestId(prefix: string): string {
  counter += 1;
  return `${prefix}-${Date.now().toString(36)}-${counter}`;
}
