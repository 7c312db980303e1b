/**
 * Ollama's JSON answers → the Backend vocabulary. Pure functions, no I/O.
 *
 * Ollama is a trust boundary: its answers are checked field by field rather than cast,
 * and Go's `omitempty` means any zero-valued number or empty string may be missing.
 */
import { BackendError, type BackendLoadedModel, type BackendModel, type BackendModelInfo, type GenerateChunk } from '../backend.js';

type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function malformed(what: string, value: unknown): BackendError {
  const shown = JSON.stringify(value) ?? String(value);
  return new BackendError(
    `unexpected Ollama answer for ${what}: ${shown.length > 200 ? `${shown.slice(0, 200)}…` : shown}`,
    undefined,
    'backend_error',
  );
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

const NS_PER_MS = 1_000_000;

function nsToMs(value: unknown): number {
  return (optionalNumber(value) ?? 0) / NS_PER_MS;
}

/** `/api/version` → `"0.5.7"`. */
export function toVersion(body: unknown): string {
  if (isObject(body) && typeof body.version === 'string') return body.version;
  throw malformed('/api/version', body);
}

function modelsArray(body: unknown, what: string): unknown[] {
  // A nil Go slice encodes as `null`; treat it, or a missing field, as no models.
  if (isObject(body) && (body.models === undefined || body.models === null)) return [];
  if (isObject(body) && Array.isArray(body.models)) return body.models;
  throw malformed(what, body);
}

function toModel(entry: unknown, what: string): BackendModel {
  if (!isObject(entry)) throw malformed(what, entry);
  // `/api/ps` has always carried `model`; `name` is the older field; accept either.
  const name = optionalString(entry.name) || optionalString(entry.model);
  if (!name) throw malformed(what, entry);
  const model: BackendModel = {
    name,
    digest: optionalString(entry.digest) ?? '',
    size_bytes: optionalNumber(entry.size) ?? 0,
  };
  if (isObject(entry.details)) model.details = entry.details;
  return model;
}

/** `/api/tags` → models on disk. */
export function toModels(body: unknown): BackendModel[] {
  return modelsArray(body, '/api/tags').map((entry) => toModel(entry, '/api/tags'));
}

/**
 * Ollama timestamps → ms since epoch. Kept as-is even for the far-future date Ollama shows
 * for `keep_alive < 0` (year 2318 or so): callers compare, they do not need "forever".
 * Go's zero time (`0001-01-01T00:00:00Z`) means "not set" and becomes undefined.
 */
export function parseOllamaTime(value: unknown): number | undefined {
  if (typeof value !== 'string' || value === '' || value.startsWith('0001-01-01')) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/** `/api/ps` → models resident in memory. */
export function toLoadedModels(body: unknown): BackendLoadedModel[] {
  return modelsArray(body, '/api/ps').map((entry) => {
    const base = toModel(entry, '/api/ps');
    const record = entry as JsonObject;
    const loaded: BackendLoadedModel = { ...base, vram_bytes: optionalNumber(record.size_vram) ?? 0 };
    const expiresAt = parseOllamaTime(record.expires_at);
    if (expiresAt !== undefined) loaded.expires_at = expiresAt;
    const contextLength = optionalNumber(record.context_length);
    if (contextLength !== undefined) loaded.context_length = contextLength;
    return loaded;
  });
}

/** `/api/show` → the few architecture numbers the scheduler needs, plus the raw answer. */
export function toModelInfo(body: unknown): BackendModelInfo {
  if (!isObject(body)) throw malformed('/api/show', body);
  const info: BackendModelInfo = { raw: body };
  const modelInfo = isObject(body.model_info) ? body.model_info : {};
  const architecture = optionalString(modelInfo['general.architecture']);
  if (architecture) info.architecture = architecture;
  const parameterCount = optionalNumber(modelInfo['general.parameter_count']);
  if (parameterCount !== undefined) info.parameter_count = parameterCount;
  if (architecture) {
    const contextLength = optionalNumber(modelInfo[`${architecture}.context_length`]);
    if (contextLength !== undefined) info.context_length = contextLength;
  }
  return info;
}

/** What one streamed line of `/api/chat` or `/api/generate` means. */
export type StreamLine =
  | { kind: 'token'; text: string }
  | { kind: 'done'; chunk: Extract<GenerateChunk, { type: 'done' }>; text?: string }
  | { kind: 'error'; message: string }
  | { kind: 'empty' };

/** Reads one NDJSON line of a chat or generate stream. */
export function readStreamLine(line: unknown): StreamLine {
  if (!isObject(line)) throw malformed('a stream line', line);
  if (line.error !== undefined && line.error !== null) {
    return { kind: 'error', message: typeof line.error === 'string' ? line.error : JSON.stringify(line.error) };
  }
  const text = isObject(line.message) ? optionalString(line.message.content) : optionalString(line.response);
  if (line.done === true) {
    // The final line may still carry text (non-streamed answers, and some servers' last token).
    return { kind: 'done', chunk: toDoneChunk(line), ...(text ? { text } : {}) };
  }
  return text ? { kind: 'token', text } : { kind: 'empty' };
}

function toDoneChunk(line: JsonObject): Extract<GenerateChunk, { type: 'done' }> {
  return {
    type: 'done',
    // Ollama before 0.1.3x sent no done_reason; a finished answer then meant a normal stop.
    done_reason: optionalString(line.done_reason) || 'stop',
    prompt_tokens: optionalNumber(line.prompt_eval_count) ?? 0,
    completion_tokens: optionalNumber(line.eval_count) ?? 0,
    total_ms: nsToMs(line.total_duration),
    load_ms: nsToMs(line.load_duration),
    prompt_eval_ms: nsToMs(line.prompt_eval_duration),
    eval_ms: nsToMs(line.eval_duration),
  };
}

/** The `{"error": "..."}` message of an error body, if it is one. */
export function errorMessageOf(body: unknown): string | undefined {
  if (!isObject(body)) return undefined;
  if (typeof body.error === 'string') return body.error;
  // OpenAI-style `{error: {message}}`, in case a proxy or an OpenAI-compatible shim answers.
  if (isObject(body.error) && typeof body.error.message === 'string') return body.error.message;
  return undefined;
}
