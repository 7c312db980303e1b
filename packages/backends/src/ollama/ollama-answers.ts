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
  OllamaClientEmbedResponse,
  OllamaClientErrorBody,
  OllamaClientModel,
  OllamaClientModelList,
  OllamaClientNumber,
  OllamaClientShowResponse,
  OllamaClientStreamLine,
  OllamaClientString,
  OllamaVersionResponse,
} from '@switchyard/protocol';
import {
  BackendError,
  type BackendLoadedModel,
  type BackendModel,
  type BackendModelInfo,
  type EmbedResponse,
  type GenerateChunk,
  type GeneratedToolCall,
} from '../backend.js';

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

/** What one streamed line of `/api/chat` or `/api/generate` means; `calls` are the line's tool calls, if any. */
export type StreamLine =
  | { kind: 'token'; text: string; calls?: GeneratedToolCall[] }
  | { kind: 'done'; chunk: Extract<GenerateChunk, { type: 'done' }>; text?: string; calls?: GeneratedToolCall[] }
  | { kind: 'error'; message: string }
  | { kind: 'empty'; calls?: GeneratedToolCall[] };

/**
 * A line's `message.tool_calls` → calls. `arguments` must be an object; a string holding a
 * JSON object (some servers and templates send it so) is parsed; anything else is malformed.
 */
function readToolCalls(value: unknown): GeneratedToolCall[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value)) throw malformed('tool_calls', value);
  const calls = value.map((entry: unknown): GeneratedToolCall => {
    const fn = isObject(entry) ? entry['function'] : undefined;
    if (!isObject(fn) || typeof fn['name'] !== 'string' || fn['name'] === '') throw malformed('a tool call', entry);
    let args: unknown = fn['arguments'] ?? {};
    if (typeof args === 'string') {
      try {
        args = args.trim() === '' ? {} : (JSON.parse(args) as unknown);
      } catch {
        throw malformed('a tool call (arguments are not JSON)', entry);
      }
    }
    if (!isObject(args)) throw malformed('a tool call (arguments are not an object)', entry);
    return { name: fn['name'], arguments: args };
  });
  return calls.length > 0 ? calls : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads one NDJSON line of a chat or generate stream. */
export function readStreamLine(value: unknown): StreamLine {
  const token = plainTokenText(value);
  if (token !== undefined) return { kind: 'token', text: token };
  const parsed = OllamaClientStreamLine.safeParse(value);
  if (!parsed.success) throw malformed('a stream line', value);
  const line = parsed.data;
  if (line.error !== undefined && line.error !== null) {
    return { kind: 'error', message: typeof line.error === 'string' ? line.error : JSON.stringify(line.error) };
  }
  // A chat line's text is its message's, even when it also has a `response`.
  const text = line.message !== undefined ? line.message.content : line.response;
  // Read from the raw line: the lenient schema drops a malformed list rather than report it.
  const rawMessage = isObject(value) ? value['message'] : undefined;
  const calls = isObject(rawMessage) ? readToolCalls(rawMessage['tool_calls']) : undefined;
  const withCalls = calls !== undefined ? { calls } : {};
  if (line.done === true) {
    // The final line may still carry text (non-streamed answers, and some servers' last token).
    return { kind: 'done', chunk: toDoneChunk(line), ...(text ? { text } : {}), ...withCalls };
  }
  return text ? { kind: 'token', text, ...withCalls } : { kind: 'empty', ...withCalls };
}

/**
 * The text of the line nearly every streamed line is (`done: false`, a chat message's or a
 * generate line's text, no error, no tool calls), read without the schema: it is checked
 * field by field as the schema would, and anything else goes through the schema. One
 * line per token made the schema a twentieth of an agent's CPU (bench:trace profile).
 */
function plainTokenText(value: unknown): string | undefined {
  if (!isObject(value) || value['done'] !== false || value['error'] !== undefined) return undefined;
  const message = value['message'];
  if (message === undefined) {
    const response = value['response'];
    return typeof response === 'string' && response !== '' ? response : undefined;
  }
  if (!isObject(message) || message['tool_calls'] !== undefined) return undefined;
  const content = message['content'];
  return typeof content === 'string' && content !== '' ? content : undefined;
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

/** `/api/embed` → vectors and counts; `inputs` is how many vectors must come back. */
export function toEmbedResponse(body: unknown, inputs: number): EmbedResponse {
  const parsed = OllamaClientEmbedResponse.safeParse(body);
  if (!parsed.success) throw malformed('/api/embed', body);
  const answer = parsed.data;
  if (answer.embeddings.length !== inputs) {
    throw new BackendError(`Ollama /api/embed answered ${answer.embeddings.length} vectors for ${inputs} inputs`, undefined, 'backend_error');
  }
  return {
    embeddings: answer.embeddings,
    prompt_tokens: answer.prompt_eval_count ?? 0,
    total_ms: nsToMs(answer.total_duration),
    load_ms: nsToMs(answer.load_duration),
  };
}
