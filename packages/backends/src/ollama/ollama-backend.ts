/**
 * Ollama over HTTP through undici: one connection pool per daemon, streamed generation read
 * line by line, every failure turned into a BackendError with a stable code.
 */
import { Pool, request, type Dispatcher } from 'undici';
import type { OllamaChatRequest, OllamaEmbedRequest, OllamaGenerateRequest, OllamaLoadRequest, OllamaUnloadRequest } from '@switchyard/protocol';
import { abortError } from '../abort.js';
import {
  BackendError,
  type Backend,
  type BackendLoadedModel,
  type BackendModel,
  type BackendModelInfo,
  type EmbedRequest,
  type EmbedResponse,
  type GenerateChunk,
  type GenerateRequest,
  type PullProgress,
} from '../backend.js';
import { NdjsonParseError, parseNdjson } from '../ndjson.js';
import { errorMessageOf, readStreamLine, toEmbedResponse, toLoadedModels, toModelInfo, toModels, toVersion } from './ollama-answers.js';

export interface OllamaTimeouts {
  /** TCP (and TLS) connect. Only used by the pool this class creates, not an injected dispatcher. */
  connectMs?: number;
  /**
   * Time to the response headers of generate/load/unload. Ollama sends nothing until the
   * model is loaded and the prompt evaluated, and loading a large model from a cold disk
   * takes minutes, so this is long.
   */
  headersMs?: number;
  /** Longest silence between two body chunks of a stream (a wedged runner, not a slow one). */
  bodyMs?: number;
  /**
   * Headers and body timeout of the quick reads (version, tags, ps, show). The agent's
   * heartbeat polls these; a hung daemon must fail the heartbeat fast, not after `headersMs`.
   */
  metadataMs?: number;
}

export interface OllamaBackendOptions {
  /** Base URL, e.g. `http://127.0.0.1:11434`; a path prefix (reverse proxy) is kept. */
  url: string;
  timeouts?: OllamaTimeouts;
  /**
   * keep_alive sent with generate and load when the call gives none. The agent owns model
   * lifecycle (DESIGN.md), so it typically sets `-1` and unloads explicitly.
   */
  keepAlive?: string | number;
  /**
   * Use this dispatcher instead of creating a Pool (tests, a shared Agent, a proxy). It is
   * not closed by {@link OllamaBackend.close}: whoever created it owns it.
   */
  dispatcher?: Dispatcher;
  /** Most sockets the created pool opens; unlimited by default (one per concurrent stream). */
  connections?: number;
}

/** How Ollama (and the llama.cpp runner under it) words a refusal for lack of memory. */
const OUT_OF_MEMORY = /requires more system memory|out of memory/i;

/** An error Ollama itself reported (its `error` field): flagged when it is a refusal for lack of memory, wherever it came from. */
function ollamaError(message: string, status: number | undefined, code: BackendError['code']): BackendError {
  return new BackendError(message, status, code, { outOfMemory: OUT_OF_MEMORY.test(message) });
}

const DEFAULT_TIMEOUTS: Required<OllamaTimeouts> = {
  connectMs: 5_000,
  headersMs: 10 * 60_000,
  bodyMs: 2 * 60_000,
  metadataMs: 30_000,
};

type DoneChunk = Extract<GenerateChunk, { type: 'done' }>;
type Timing = { headersTimeout: number; bodyTimeout: number };

export class OllamaBackend implements Backend {
  readonly kind = 'ollama' as const;
  readonly url: string;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #keepAlive: string | number | undefined;
  readonly #quick: Timing;
  readonly #long: Timing;
  #closing: Promise<void> | undefined;

  constructor(options: OllamaBackendOptions) {
    const parsed = new URL(options.url);
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new TypeError(`Ollama URL must be http(s): ${options.url}`);
    }
    this.url = parsed.origin + parsed.pathname.replace(/\/+$/, '');
    const timeouts = { ...DEFAULT_TIMEOUTS, ...definedOnly(options.timeouts ?? {}) };
    this.#quick = { headersTimeout: timeouts.metadataMs, bodyTimeout: timeouts.metadataMs };
    this.#long = { headersTimeout: timeouts.headersMs, bodyTimeout: timeouts.bodyMs };
    this.#keepAlive = options.keepAlive;
    this.#ownsDispatcher = options.dispatcher === undefined;
    this.#dispatcher =
      options.dispatcher ??
      new Pool(parsed.origin, {
        // 1 = keep-alive on, no pipelining: a long generation must never hold up the
        // requests queued behind it on the same socket (0 would disable keep-alive).
        pipelining: 1,
        connections: options.connections ?? null,
        connect: { timeout: timeouts.connectMs },
      });
  }

  async version(signal?: AbortSignal): Promise<string> {
    return toVersion(await this.#json('GET', '/api/version', undefined, signal, this.#quick));
  }

  async listModels(signal?: AbortSignal): Promise<BackendModel[]> {
    return toModels(await this.#json('GET', '/api/tags', undefined, signal, this.#quick));
  }

  async listLoaded(signal?: AbortSignal): Promise<BackendLoadedModel[]> {
    return toLoadedModels(await this.#json('GET', '/api/ps', undefined, signal, this.#quick));
  }

  async show(model: string, signal?: AbortSignal): Promise<BackendModelInfo> {
    return toModelInfo(await this.#json('POST', '/api/show', { model }, signal, this.#quick));
  }

  async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateChunk, void, undefined> {
    const path = req.messages !== undefined ? '/api/chat' : '/api/generate';
    const res = await this.#send('POST', path, this.#generateBody(req), signal, this.#long);
    if (!isSuccess(res.statusCode)) throw await this.#failure(res, path, signal);

    const body = res.body;
    let done: DoneChunk | undefined;
    try {
      for await (const value of parseNdjson(body)) {
        const line = readStreamLine(value);
        if (line.kind === 'error') throw ollamaError(line.message, undefined, 'backend_error');
        if (line.kind === 'token') yield { type: 'token', text: line.text };
        if (line.kind !== 'done' && line.calls !== undefined) yield { type: 'tool_calls', calls: line.calls };
        if (line.kind === 'done') {
          if (line.text) yield { type: 'token', text: line.text };
          if (line.calls !== undefined) yield { type: 'tool_calls', calls: line.calls };
          // Held back until the body ends so the socket goes back to the pool whole: a
          // caller that stops at `done` would otherwise cut the chunked trailer and burn it.
          done = line.chunk;
        }
      }
    } catch (err) {
      throw this.#streamError(err, path, signal);
    } finally {
      // Reached on break/return, on abort and on errors: destroying an unfinished undici body
      // aborts the request and closes its socket, which is how Ollama learns to stop
      // generating (it logs 499). A finished body is already destroyed; this is then a no-op.
      if (!body.destroyed) body.destroy();
    }
    if (done === undefined) {
      throw new BackendError(`Ollama ${path} stream ended without a done line`, undefined, 'backend_error');
    }
    yield done;
  }

  async embed(req: EmbedRequest, signal?: AbortSignal): Promise<EmbedResponse> {
    const keepAlive = req.keep_alive ?? this.#keepAlive;
    const payload: OllamaEmbedRequest = { model: req.model, input: req.input };
    if (req.truncate !== undefined) payload.truncate = req.truncate;
    if (req.dimensions !== undefined) payload.dimensions = req.dimensions;
    if (req.options !== undefined) payload.options = req.options;
    if (keepAlive !== undefined) payload.keep_alive = keepAlive;
    const answer = await this.#json('POST', '/api/embed', payload, signal, this.#long);
    const message = errorMessageOf(answer);
    if (message !== undefined) throw ollamaError(message, undefined, 'backend_error');
    return toEmbedResponse(answer, req.input.length);
  }

  async load(model: string, keepAlive?: string | number, signal?: AbortSignal): Promise<void> {
    const keep = keepAlive ?? this.#keepAlive;
    const keepField = keep !== undefined ? { keep_alive: keep } : {};
    try {
      await this.#lifecycle({ model, stream: false, ...keepField }, signal);
    } catch (error) {
      // An embedding model refuses /api/generate ("… does not support generate"); an
      // /api/embed without input loads it instead (Ollama schedules the runner, embeds nothing).
      if (!(error instanceof BackendError && error.status === 400 && /does not support generate/i.test(error.message))) throw error;
      const answer = await this.#json('POST', '/api/embed', { model, input: [], ...keepField } satisfies OllamaEmbedRequest, signal, this.#long);
      const message = errorMessageOf(answer);
      if (message !== undefined) throw ollamaError(message, undefined, 'backend_error');
    }
  }

  async unload(model: string, signal?: AbortSignal): Promise<void> {
    await this.#lifecycle({ model, stream: false, keep_alive: 0 }, signal);
  }

  close(): Promise<void> {
    if (!this.#ownsDispatcher) return Promise.resolve();
    // undici rejects a second close(); callers on several shutdown paths share the first.
    this.#closing ??= this.#dispatcher.close();
    return this.#closing;
  }

  /** Load and unload are generate calls without a prompt: Ollama answers `done_reason` load/unload. */
  async *pull(model: string, signal?: AbortSignal): AsyncGenerator<PullProgress, void, undefined> {
    const path = '/api/pull';
    // A download of tens of GB streams progress lines throughout: no headers or body timeout
    // beyond the long one (a silent stream for that long is a stuck pull).
    const res = await this.#send('POST', path, { model, stream: true }, signal, this.#long);
    if (!isSuccess(res.statusCode)) throw await this.#failure(res, path, signal);
    const body = res.body;
    let succeeded = false;
    try {
      for await (const value of parseNdjson(body)) {
        const line = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
        const message = errorMessageOf(line);
        if (message !== undefined) {
          // Ollama streams a missing manifest as an error line after a 200.
          const missing = /file does not exist|not found/i.test(message);
          throw ollamaError(message, undefined, missing ? 'model_not_found' : 'backend_error');
        }
        const progress: PullProgress = { status: typeof line['status'] === 'string' ? line['status'] : '' };
        if (typeof line['digest'] === 'string') progress.digest = line['digest'];
        if (typeof line['total'] === 'number') progress.total = line['total'];
        if (typeof line['completed'] === 'number') progress.completed = line['completed'];
        if (progress.status === 'success') succeeded = true;
        yield progress;
      }
    } catch (err) {
      throw this.#streamError(err, path, signal);
    } finally {
      if (!body.destroyed) body.destroy();
    }
    if (!succeeded) throw new BackendError(`Ollama ${path} of ${model} ended before success (connection cut mid-download)`, undefined, 'unavailable');
  }

  async delete(model: string, signal?: AbortSignal): Promise<void> {
    const path = '/api/delete';
    const res = await this.#send('DELETE', path, { model }, signal, this.#quick);
    if (res.statusCode === 404) {
      await res.body.dump();
      return;
    }
    if (!isSuccess(res.statusCode)) throw await this.#failure(res, path, signal);
    await res.body.dump();
  }

  async copy(source: string, destination: string, signal?: AbortSignal): Promise<void> {
    const path = '/api/copy';
    const res = await this.#send('POST', path, { source, destination }, signal, this.#quick);
    if (!isSuccess(res.statusCode)) throw await this.#failure(res, path, signal);
    await res.body.dump();
  }

  async #lifecycle(payload: OllamaLoadRequest | OllamaUnloadRequest, signal: AbortSignal | undefined): Promise<void> {
    const answer = await this.#json('POST', '/api/generate', payload, signal, this.#long);
    const message = errorMessageOf(answer);
    if (message !== undefined) throw ollamaError(message, undefined, 'backend_error');
  }

  #generateBody(req: GenerateRequest): OllamaChatRequest | OllamaGenerateRequest {
    const keepAlive = req.keep_alive ?? this.#keepAlive;
    const common: Pick<OllamaChatRequest & OllamaGenerateRequest, 'model' | 'stream' | 'options' | 'format' | 'keep_alive'> = { model: req.model, stream: true };
    if (req.options !== undefined) common.options = req.options;
    if (req.format !== undefined) common.format = req.format;
    if (keepAlive !== undefined) common.keep_alive = keepAlive;
    if (req.messages !== undefined) {
      // /api/chat has no `system` field; a system prompt is the first message.
      const messages = req.system !== undefined ? [{ role: 'system', content: req.system }, ...req.messages] : req.messages;
      const chat: OllamaChatRequest = { ...common, messages: messages as NonNullable<OllamaChatRequest['messages']> };
      if (req.tools !== undefined && req.tools.length > 0) {
        chat.tools = req.tools;
        if (req.tool_choice !== undefined) chat.tool_choice = req.tool_choice;
        if (req.parallel_tool_calls !== undefined) chat['parallel_tool_calls'] = req.parallel_tool_calls;
      }
      return chat;
    }
    return {
      ...common,
      ...(req.prompt !== undefined ? { prompt: req.prompt } : {}),
      ...(req.system !== undefined ? { system: req.system } : {}),
    };
  }

  async #json(method: 'GET' | 'POST', path: string, payload: unknown, signal: AbortSignal | undefined, timing: Timing): Promise<unknown> {
    const res = await this.#send(method, path, payload, signal, timing);
    if (!isSuccess(res.statusCode)) throw await this.#failure(res, path, signal);
    const text = await this.#text(res, path, signal);
    try {
      return JSON.parse(text) as unknown;
    } catch (cause) {
      throw new BackendError(`Ollama ${path} answered non-JSON: ${truncate(text)}`, undefined, 'backend_error', { cause });
    }
  }

  async #send(method: 'GET' | 'POST' | 'DELETE', path: string, payload: unknown, signal: AbortSignal | undefined, timing: Timing): Promise<Dispatcher.ResponseData> {
    if (signal?.aborted) throw abortError(signal);
    try {
      return await request(this.url + path, {
        dispatcher: this.#dispatcher,
        method,
        signal,
        ...timing,
        ...(payload !== undefined ? { body: JSON.stringify(payload), headers: { 'content-type': 'application/json' } } : {}),
      });
    } catch (err) {
      throw this.#transportError(err, path, signal);
    }
  }

  async #text(res: Dispatcher.ResponseData, path: string, signal: AbortSignal | undefined): Promise<string> {
    try {
      return await res.body.text();
    } catch (err) {
      throw this.#transportError(err, path, signal);
    }
  }

  /** A non-2xx answer → BackendError carrying Ollama's `{"error"}` message. */
  async #failure(res: Dispatcher.ResponseData, path: string, signal: AbortSignal | undefined): Promise<BackendError> {
    const status = res.statusCode;
    const text = await this.#text(res, path, signal);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const message = errorMessageOf(parsed);
    if (message === undefined) {
      const shown = text.trim() === '' ? '' : `: ${truncate(text.trim())}`;
      // A 404 without Ollama's JSON error is a missing route (old daemon, wrong base URL,
      // a proxy), not a missing model; calling it model_not_found would send admission astray.
      const code = status === 404 ? 'backend_error' : codeForStatus(status);
      return new BackendError(`Ollama ${path} answered HTTP ${status}${shown}`, status, code);
    }
    return ollamaError(message, status, codeForStatus(status));
  }

  #streamError(err: unknown, path: string, signal: AbortSignal | undefined): Error {
    if (signal?.aborted) return abortError(signal);
    if (err instanceof BackendError) return err;
    if (err instanceof NdjsonParseError) {
      return new BackendError(`Ollama ${path} stream: ${err.message}`, undefined, 'backend_error', { cause: err });
    }
    return this.#transportError(err, path, signal);
  }

  /** undici and socket errors: the daemon is down, unreachable or stuck → `unavailable`. */
  #transportError(err: unknown, path: string, signal: AbortSignal | undefined): Error {
    // undici rejects with the signal's reason or its own RequestAbortedError depending on
    // timing; callers get one consistent abort error either way.
    if (signal?.aborted) return abortError(signal);
    if (err instanceof BackendError) return err;
    return new BackendError(`Ollama at ${this.url} failed on ${path}: ${describe(err)}`, undefined, 'unavailable', {
      cause: err,
    });
  }
}

function isSuccess(status: number): boolean {
  return status >= 200 && status < 300;
}

function codeForStatus(status: number): BackendError['code'] {
  if (status === 404) return 'model_not_found';
  if (status === 503) return 'busy';
  if (status === 400) return 'bad_request';
  return 'backend_error';
}

function truncate(text: string, max = 300): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/** `ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:11434`; Node's happy-eyeballs AggregateError has an empty message. */
function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  let message = err.message;
  if (message === '' && err instanceof AggregateError) {
    message = err.errors.map((inner: unknown) => (inner instanceof Error ? inner.message : String(inner))).join('; ');
  }
  return typeof code === 'string' && !message.includes(code) ? `${code}: ${message}` : message || err.name;
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
