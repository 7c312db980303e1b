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

/** A call the model made, as a chat history carries it back (Ollama's shape: `arguments` is an object). */
export interface ToolCallInput {
  function: { name: string; arguments: Record<string, unknown>; [key: string]: unknown };
  [key: string]: unknown;
}

export interface ChatMessageInput {
  role: string;
  content: string;
  images?: string[];
  /** An assistant turn's calls. */
  tool_calls?: ToolCallInput[];
  /** A `tool` turn: the tool whose result this is. */
  tool_name?: string;
}

/** A function the model may call: `{type: "function", function: {name, description?, parameters?}}`. */
export interface ToolDefinitionInput {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; [key: string]: unknown };
  [key: string]: unknown;
}

/** `none`, `auto`, `required`, or a named function. Sent beside `tools`. */
export type ToolChoiceInput = 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };

/** A tool call the model answered with. */
export interface GeneratedToolCall {
  name: string;
  arguments: Record<string, unknown>;
}

export interface GenerateRequest {
  model: string;
  /** Chat when set; otherwise `prompt` is used with generate. */
  messages?: ChatMessageInput[];
  prompt?: string;
  system?: string;
  options?: Record<string, unknown>;
  format?: unknown;
  /** Chat only: functions the model may call. */
  tools?: ToolDefinitionInput[];
  /** Chat only, with `tools`: which tool(s) the model must or may call. */
  tool_choice?: ToolChoiceInput;
  parallel_tool_calls?: boolean;
  /** Ollama keep_alive: duration string, seconds, 0 (unload now) or negative (forever). */
  keep_alive?: string | number;
}

export interface EmbedRequest {
  model: string;
  /** One vector comes back per input, in this order. */
  input: string[];
  /** Cut inputs longer than the context (Ollama's default, true) rather than fail. */
  truncate?: boolean;
  dimensions?: number;
  keep_alive?: string | number;
  options?: Record<string, unknown>;
}

export interface EmbedResponse {
  /** One vector per input, in input order. */
  embeddings: number[][];
  prompt_tokens: number;
  total_ms: number;
  load_ms: number;
}

/** One piece of a streamed generation. */
export type GenerateChunk =
  | { type: 'token'; text: string }
  /** Calls the model made (a chat line's `message.tool_calls`), in the order it made them. */
  | { type: 'tool_calls'; calls: GeneratedToolCall[] }
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

/** One progress line of a model download (Ollama's `/api/pull`). */
export interface PullProgress {
  status: string;
  digest?: string;
  total?: number;
  completed?: number;
}

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
  /**
   * Embeds every input in one call (`/api/embed`). Rejects with a BackendError as generate
   * does, and when the backend answers a different number of vectors than inputs.
   */
  embed(request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResponse>;
  /** Loads a model without generating (empty request); resolves when loaded. */
  load(model: string, keepAlive?: string | number, signal?: AbortSignal): Promise<void>;
  /** Unloads a model now (`keep_alive: 0`). */
  unload(model: string, signal?: AbortSignal): Promise<void>;
  /**
   * Downloads a model (`/api/pull`, streamed; `name@sha256:<hex>` asks for one build):
   * yields each progress line and ends after `success`. An error line rejects with a
   * BackendError (`model_not_found` for a name the registry does not have); a stream cut
   * before `success` rejects as `unavailable`. Absent on backends that cannot pull.
   */
  pull?(model: string, signal?: AbortSignal): AsyncIterable<PullProgress>;
  /** Deletes a model from the backend's disk (`/api/delete`); a model already gone is not an error. */
  delete?(model: string, signal?: AbortSignal): Promise<void>;
  /**
   * Gives a model a second name for the same build (`/api/copy`, as `ollama cp`; the blobs are
   * shared). A rollout keeps the old build servable under such a name while the model's own
   * name is pulled to the new one.
   */
  copy?(source: string, destination: string, signal?: AbortSignal): Promise<void>;
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
