/**
 * The simulated embedding model: deterministic vectors, truncation, and the time a call takes.
 *
 * **Vectors.** A text's vector is the sum of one pseudo-random vector per word (lower-cased
 * runs of letters or digits, each counted as often as it occurs) and a smaller one for the
 * whole text, normalised to length 1. Each of those comes from a PRNG seeded with
 * sha256(model, word or text), so the same text gives the same vector on every run and machine,
 * other models give other vectors, and texts that share words point in similar directions
 * (cosine similarity grows with the words they share), enough for a retrieval demo to rank.
 * `dimensions` keeps the first that many components and normalises again (as Ollama does for
 * models trained for it); a value at or above the model's length, or ≤ 0, changes nothing.
 * Components are rounded to 7 significant digits, about what Ollama's float32s carry.
 *
 * **Length.** An input counts ceil(chars / 4) tokens (at least 1), as prompts do. One longer
 * than the runner's context (`options.num_ctx`, else the config's `num_ctx`, clamped to the
 * model's `context_length`) is cut to its first `num_ctx × 4` characters and counted as
 * truncated, or, with `truncate: false`, refused with Ollama's 400.
 *
 * **Time**, per call (one `/api/embed` or `/api/embeddings` request that has inputs), all
 * times `time_scale`:
 *
 *     call_ms + input_ms × inputs + token_ms × input tokens
 *
 * (the model's `embedding.call_ms`/`input_ms`/`token_ms`, else the config's `embed_call_ms`
 * 10, `embed_input_ms` 0.3, `embed_token_ms` 0). An embedding model's runner serves one call
 * at a time, as Ollama's (one parallel sequence), so concurrent calls queue: 64 single-input
 * calls take 64 × 10.3 ms, one call of 64 inputs 29.2 ms. That is the saving batching buys.
 */
import type { GpuSimConfig } from './config.js';
import type { ModelSpec } from './model-spec.js';
import { SimError } from './sim-error.js';
import { promptTokenCount, seededRandom } from './token-generator.js';

/** The weight of the whole-text component against one word's. */
const TEXT_WEIGHT = 0.35;

function addRandom(into: Float64Array, seed: string, weight: number): void {
  const random = seededRandom('embedding', seed);
  for (let i = 0; i < into.length; i++) into[i] = (into[i] as number) + weight * (2 * random() - 1);
}

function normalise(vector: ArrayLike<number>, length: number): number[] {
  let sum = 0;
  for (let i = 0; i < length; i++) sum += (vector[i] as number) ** 2;
  const norm = Math.sqrt(sum) || 1;
  const out = new Array<number>(length);
  for (let i = 0; i < length; i++) out[i] = Number(((vector[i] as number) / norm).toPrecision(7));
  return out;
}

/** The model's vector for a text (already truncated), `dimensions` long when that is shorter. */
export function embeddingVector(model: ModelSpec, text: string, dimensions?: number | null): number[] {
  const full = model.embedding?.dimensions ?? model.embedding_length;
  const vector = new Float64Array(full);
  addRandom(vector, `${model.name}\u0000text\u0000${text}`, TEXT_WEIGHT);
  const counts = new Map<string, number>();
  for (const word of text.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []) counts.set(word, (counts.get(word) ?? 0) + 1);
  for (const [word, times] of counts) addRandom(vector, `${model.name}\u0000word\u0000${word}`, times);
  const length = dimensions !== undefined && dimensions !== null && dimensions > 0 && dimensions < full ? dimensions : full;
  return normalise(vector, length);
}

export interface PreparedInput {
  /** The text embedded (cut to the context when it was longer). */
  text: string;
  tokens: number;
  truncated: boolean;
}

/** Counts and, where needed, truncates one input; throws Ollama's 400 when `truncate` is false and it is too long. */
export function prepareInput(text: string, numCtx: number, truncate: boolean): PreparedInput {
  const tokens = promptTokenCount(text);
  if (tokens <= numCtx) return { text, tokens, truncated: false };
  if (!truncate) throw new SimError('bad_request', 'input length exceeds maximum context length');
  return { text: text.slice(0, numCtx * 4), tokens: numCtx, truncated: true };
}

/** The nominal (unscaled) time of one call, in ms: see the module comment. */
export function embedCallMs(config: GpuSimConfig, model: ModelSpec, inputs: number, tokens: number): number {
  const spec = model.embedding;
  const callMs = spec?.call_ms ?? config.embed_call_ms;
  const inputMs = spec?.input_ms ?? config.embed_input_ms;
  const tokenMs = spec?.token_ms ?? config.embed_token_ms;
  return callMs + inputMs * inputs + tokenMs * tokens;
}
