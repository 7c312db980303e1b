/**
 * The one interface the agent talks to, whatever serves the model: Ollama today, an
 * OpenAI-compatible server later. Everything is expressed in Ollama's vocabulary
 * (durations converted to milliseconds) because Ollama is the first backend.
 */

export interface BackendModel {
  /** Name as the backend reports it, e.g. `llama3.1:8b`. */
  name: string;
  digest: string;
  size_bytes: number;
  details?: Record<string, unknown>;
}

export interface BackendLoadedModel extends BackendModel {
  /** Bytes resident in VRAM (`size_vram`); less than `size_bytes` when partly offloaded. */
  vram_bytes: number;
  /** When the backend would unload it on its own (ms since epoch), if it says. */
  expires_at?: number;
  context_length?: number;
}

export interface BackendModelInfo {
  /** Raw `/api/show` answer, for callers that need architecture numbers. */
  raw: Record<string, unknown>;
  parameter_count?: number;
  context_length?: number;
  architecture?: string;
}

export interface ChatMessageInput {
  role: string;
  content: string;
  images?: string[];
}

export interface GenerateRequest {
  model: string;
  /** Chat when set; otherwise `prompt` is used with generate. */
  messages?: ChatMessageInput[];
  prompt?: string;
  system?: string;
  options?: Record<string, unknown>;
  format?: unknown;
  /** Ollama keep_alive: duration string, seconds, 0 (unload now) or negative (forever). */
  keep_alive?: string | number;
}

/** One piece of a streamed generation. */
export type GenerateChunk =
  | { type: 'token'; text: string }
  | {
      type: 'done';
      done_reason: string;
      prompt_tokens: number;
      completion_tokens: number;
      total_ms: number;
      load_ms: number;
      prompt_eval_ms: number;
      eval_ms: number;
    };

export interface Backend {
  readonly kind: 'ollama' | 'openai';
  readonly url: string;
  version(signal?: AbortSignal): Promise<string>;
  listModels(signal?: AbortSignal): Promise<BackendModel[]>;
  listLoaded(signal?: AbortSignal): Promise<BackendLoadedModel[]>;
  show(model: string, signal?: AbortSignal): Promise<BackendModelInfo>;
  /**
   * Streams a generation. Tokens are yielded as they are read from the wire; the last
   * chunk is `done`. Aborting `signal` closes the HTTP request (the backend stops
   * generating) and the iterator rejects with an AbortError.
   * A mid-stream `{"error": ...}` line rejects with a BackendError.
   */
  generate(request: GenerateRequest, signal?: AbortSignal): AsyncIterable<GenerateChunk>;
  /** Loads a model without generating (empty request); resolves when loaded. */
  load(model: string, keepAlive?: string | number, signal?: AbortSignal): Promise<void>;
  /** Unloads a model now (`keep_alive: 0`). */
  unload(model: string, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

/** A failure reported by the backend or met talking to it. */
export class BackendError extends Error {
  override readonly name = 'BackendError';
  constructor(
    message: string,
    /** HTTP status when the backend answered one; undefined for network errors and mid-stream errors. */
    readonly status?: number,
    /** `model_not_found`, `busy`, `unavailable`, `bad_request`, `backend_error`. */
    readonly code: 'model_not_found' | 'busy' | 'unavailable' | 'bad_request' | 'backend_error' = 'backend_error',
    /**
     * `cause` keeps the undici or parse error underneath (ECONNREFUSED,
     * UND_ERR_HEADERS_TIMEOUT, ...) so logs show why a node looked down; `outOfMemory` is set
     * by the backend client, which knows how its server words that refusal.
     */
    options?: ErrorOptions & { outOfMemory?: boolean },
  ) {
    super(message, options);
    this.outOfMemory = options?.outOfMemory ?? false;
  }

  /**
   * The backend refused because the model does not fit in memory now, as opposed to being
   * down or failing: worth a cooldown on this node, not a retry.
   */
  readonly outOfMemory: boolean;
}
