/**
 * Ollama's JSON answers → the Backend vocabulary. Pure functions, no I/O.
 *
 * Ollama is a trust boundary: its answers are checked rather than cast. The shapes, and how
 * leniently the client reads them, are the shared Ollama wire module's (the `OllamaClient*`
 * variants in @switchyard/protocol): what it checks is what the client relies on, and any
 * other field that is missing (Go's `omitempty` drops zero values) or mistyped reads as
 * absent. This file turns the result into the Backend's units and defaults.
 */
import {
  OllamaClientErrorBody,
  OllamaClientModel,
  OllamaClientModelList,
  OllamaClientNumber,
  OllamaClientShowResponse,
  OllamaClientStreamLine,
  OllamaClientString,
  OllamaVersionResponse,
} from '@switchyard/protocol';
import { BackendError, type BackendLoadedModel, type BackendModel, type BackendModelInfo, type GenerateChunk } from '../backend.js';

function malformed(what: string, value: unknown): BackendError {
  const shown = JSON.stringify(value) ?? String(value);
  return new BackendError(`unexpected Ollama answer for ${what}: ${shown.length > 200 ? `${shown.slice(0, 200)}…` : shown}`, undefined, 'backend_error');
}

const NS_PER_MS = 1_000_000;

function nsToMs(value: number | undefined): number {
  return (value ?? 0) / NS_PER_MS;
}

/** `/api/version` → `"0.5.7"`. */
export function toVersion(body: unknown): string {
  const parsed = OllamaVersionResponse.safeParse(body);
  if (parsed.success) return parsed.data.version;
  throw malformed('/api/version', body);
}

/** The entries of `/api/tags` or `/api/ps`; a bad entry is reported as itself, not as the whole list. */
function modelEntries(body: unknown, what: string): OllamaClientModel[] {
  const list = OllamaClientModelList.safeParse(body);
  if (!list.success) throw malformed(what, body);
  return (list.data.models ?? []).map((entry) => {
    const parsed = OllamaClientModel.safeParse(entry);
    if (!parsed.success) throw malformed(what, entry);
    return parsed.data;
  });
}

function toModel(entry: OllamaClientModel): BackendModel {
  const model: BackendModel = { name: entry.name, digest: entry.digest ?? '', size_bytes: entry.size ?? 0 };
  if (entry.details !== undefined) model.details = entry.details;
  return model;
}

/** `/api/tags` → models on disk. */
export function toModels(body: unknown): BackendModel[] {
  return modelEntries(body, '/api/tags').map(toModel);
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
  return modelEntries(body, '/api/ps').map((entry) => {
    const loaded: BackendLoadedModel = { ...toModel(entry), vram_bytes: entry.size_vram ?? 0 };
    const expiresAt = parseOllamaTime(entry.expires_at);
    if (expiresAt !== undefined) loaded.expires_at = expiresAt;
    if (entry.context_length !== undefined) loaded.context_length = entry.context_length;
    return loaded;
  });
}

/** `/api/show` → the few architecture numbers the scheduler needs, plus the raw answer. */
export function toModelInfo(body: unknown): BackendModelInfo {
  const parsed = OllamaClientShowResponse.safeParse(body);
  if (!parsed.success) throw malformed('/api/show', body);
  // `raw` is the answer as sent (the schema checked it is an object), not zod's copy of it.
  const info: BackendModelInfo = { raw: body as Record<string, unknown> };
  const modelInfo = parsed.data.model_info ?? {};
  const architecture = OllamaClientString.parse(modelInfo['general.architecture']);
  if (architecture) info.architecture = architecture;
  const parameterCount = OllamaClientNumber.parse(modelInfo['general.parameter_count']);
  if (parameterCount !== undefined) info.parameter_count = parameterCount;
  if (architecture) {
    const contextLength = OllamaClientNumber.parse(modelInfo[`${architecture}.context_length`]);
    if (contextLength !== undefined) info.context_length = contextLength;
  }
  return info;
}

/** What one streamed line of `/api/chat` or `/api/generate` means. */
export type StreamLine =
  { kind: 'token'; text: string } | { kind: 'done'; chunk: Extract<GenerateChunk, { type: 'done' }>; text?: string } | { kind: 'error'; message: string } | { kind: 'empty' };

/** Reads one NDJSON line of a chat or generate stream. */
export function readStreamLine(value: unknown): StreamLine {
  const parsed = OllamaClientStreamLine.safeParse(value);
  if (!parsed.success) throw malformed('a stream line', value);
  const line = parsed.data;
  if (line.error !== undefined && line.error !== null) {
    return { kind: 'error', message: typeof line.error === 'string' ? line.error : JSON.stringify(line.error) };
  }
  // A chat line's text is its message's, even when it also has a `response`.
  const text = line.message !== undefined ? line.message.content : line.response;
  if (line.done === true) {
    // The final line may still carry text (non-streamed answers, and some servers' last token).
    return { kind: 'done', chunk: toDoneChunk(line), ...(text ? { text } : {}) };
  }
  return text ? { kind: 'token', text } : { kind: 'empty' };
}

function toDoneChunk(line: OllamaClientStreamLine): Extract<GenerateChunk, { type: 'done' }> {
  return {
    type: 'done',
    // Ollama before 0.1.3x sent no done_reason; a finished answer then meant a normal stop.
    done_reason: line.done_reason || 'stop',
    prompt_tokens: line.prompt_eval_count ?? 0,
    completion_tokens: line.eval_count ?? 0,
    total_ms: nsToMs(line.total_duration),
    load_ms: nsToMs(line.load_duration),
    prompt_eval_ms: nsToMs(line.prompt_eval_duration),
    eval_ms: nsToMs(line.eval_duration),
  };
}

/** The message of an error body (`{"error": "..."}`, or OpenAI's shape from a proxy), if it is one. */
export function errorMessageOf(body: unknown): string | undefined {
  const parsed = OllamaClientErrorBody.safeParse(body);
  if (!parsed.success) return undefined;
  return typeof parsed.data.error === 'string' ? parsed.data.error : parsed.data.error.message;
}
