import { AgentHeartbeat, JobAccepted, JobRecord, type JobRequestInput, type StreamEvent } from '@switchyard/protocol';
import { ClientErrorCode, SwitchyardError } from './errors.js';
import { Http, type RetryOptions } from './http.js';
import { createJobEventStream, type JobEventStream, type ReconnectOptions, type StreamOptions } from './job-stream.js';
import { modelEntryProblem, type ModelEntry } from './models.js';
import { catalogStatusProblem, rolloutViewProblem, type CatalogEntryInput, type CatalogModelStatus, type RolloutView } from './catalog.js';
import { apiKeyInfoProblem, createdApiKeyProblem, type ApiKeyInfo, type CreateKeyRequest, type CreatedApiKey } from './api-keys.js';

/** Options of {@link SwitchyardClient}. */
export interface SwitchyardClientOptions {
  /** The API's base URL, e.g. `http://localhost:8080`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** A `fetch` to use instead of the global one (a proxy agent, a test double). */
  fetch?: typeof fetch;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
  /** Retries of `429`/`503` refusals after `Retry-After`. */
  retry?: RetryOptions;
  /** Reconnection of dropped event streams. */
  reconnect?: ReconnectOptions;
}

/** Per-call options. */
export interface CallOptions {
  signal?: AbortSignal;
}

/** The answer to `submit`: the job's id, links, and its place in the queue. */
export interface SubmittedJob extends JobAccepted {
  /**
   * Position (0 = next) and depth of the model's queue when the job was accepted, and any
   * estimate the API adds (such as `eta_s`).
   */
  queue?: { position: number; depth: number; [field: string]: unknown };
}

/** A `tool_call` event of a job's stream: one whole call the model made. */
export type ToolCallEvent = Extract<StreamEvent, { type: 'tool_call' }>;

/** A call the model made, as `run` collects it: its `tool_call` event without `type` and `seq`. */
export type ToolCallOutcome = Omit<ToolCallEvent, 'type' | 'seq'>;

/** What `run` resolves with: the final text (after any restart) and the `done` event. */
export interface JobOutcome {
  id: string;
  text: string;
  done: Extract<StreamEvent, { type: 'done' }>;
  /** How many times the job was restarted on another agent. */
  restarts: number;
  /**
   * The calls the model made (its `tool_call` events, in `index` order), when it made any;
   * `done.finish_reason` is then `tool_calls`. A restart voids the calls made before it, as
   * it voids the text.
   */
  tool_calls?: ToolCallOutcome[];
  /** An embed job's vectors (`done.embeddings`), one per input, in input order. */
  embeddings?: number[][];
}

export interface RunOptions extends CallOptions {
  /** Every event as it arrives (tokens, tool calls, queue position, restarts). */
  onEvent?: (event: StreamEvent) => void;
  /** The job once accepted (its id, to cancel it or to log it), before its first event. */
  onSubmitted?: (job: SubmittedJob) => void;
}

/**
 * Options of {@link SwitchyardClient.embed}: the embed job's own fields (`truncate`,
 * `dimensions`) and the fields every job takes.
 */
export interface EmbedOptions
  extends RunOptions, Pick<JobRequestInput, 'truncate' | 'dimensions' | 'options' | 'priority' | 'deadline_ms' | 'idempotency_key' | 'metadata' | 'detach' | 'digest'> {}

/**
 * A typed client for Switchyard's native API. Uses only `fetch`, so it runs in Node 20+ and
 * in browsers; every answer is validated with the protocol schemas.
 *
 * @example
 * ```ts
 * import { SwitchyardClient } from '@switchyard/sdk';
 *
 * const client = new SwitchyardClient({ baseUrl: 'http://localhost:8080', apiKey: process.env.SWITCHYARD_API_KEY });
 * const job = await client.submit({ model: 'llama3.1:8b', prompt: 'Why is the sky blue?' });
 * for await (const event of client.stream(job)) {
 *   if (event.type === 'token') process.stdout.write(event.text);
 *   if (event.type === 'restarted') console.error('\n[restarted elsewhere: the text so far is void]');
 * }
 * ```
 */
export class SwitchyardClient {
  private readonly http: Http;

  constructor(private readonly options: SwitchyardClientOptions) {
    if (!options.baseUrl) throw new TypeError('SwitchyardClient needs a baseUrl');
    const fetchImpl = options.fetch ?? ((input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => globalThis.fetch(input, init));
    this.http = new Http({
      baseUrl: options.baseUrl,
      fetch: fetchImpl,
      retry: options.retry ?? {},
      ...(options.apiKey !== undefined && { apiKey: options.apiKey }),
      ...(options.headers !== undefined && { headers: options.headers }),
    });
  }

  /**
   * Submits a job (`POST /v1/jobs`). Refusals (`429`, `503`) are retried after their
   * `Retry-After` within the retry budget, then thrown as {@link SwitchyardError}. A network
   * failure is not retried unless the request has an `idempotency_key` (otherwise a retry
   * could queue the job twice).
   *
   * @example
   * ```ts
   * const job = await client.submit({ model: 'llama3.2:3b', messages: [{ role: 'user', content: 'hi' }], priority: 'batch' });
   * console.log(job.id, job.queue?.position);
   * ```
   */
  async submit(request: JobRequestInput, options: CallOptions = {}): Promise<SubmittedJob> {
    const send = () => this.http.json('POST', '/v1/jobs', { body: request, ...(options.signal && { signal: options.signal }) });
    let answer;
    try {
      answer = await send();
    } catch (error) {
      if (!(error instanceof SwitchyardError && error.code === ClientErrorCode.connectionFailed && request.idempotency_key !== undefined)) throw error;
      answer = await send();
    }
    const accepted = validate(JobAccepted, answer.body, 'POST /v1/jobs');
    const queue = (answer.body as { queue?: unknown }).queue;
    return isQueue(queue) ? { ...accepted, queue } : accepted;
  }

  /**
   * Reads a job (`GET /v1/jobs/:id`): status, and once finished its result, usage and timings.
   *
   * @example
   * ```ts
   * const record = await client.get(job.id);
   * if (record.status === 'completed') console.log(record.result?.text);
   * ```
   */
  async get(jobId: string, options: CallOptions = {}): Promise<JobRecord> {
    const answer = await this.http.json('GET', `/v1/jobs/${encodeURIComponent(jobId)}`, options);
    return validate(JobRecord, answer.body, 'GET /v1/jobs/:id');
  }

  /**
   * Cancels a job (`DELETE /v1/jobs/:id`), queued or running. Resolves with the job's record
   * (status `cancelled` once confirmed; a running job may still show `running` if its agent
   * did not confirm in time). A job that already ended throws `job_finished`.
   *
   * @example
   * ```ts
   * await client.cancel(job.id).catch((error) => { if (error.code !== ErrorCode.jobFinished) throw error; });
   * ```
   */
  async cancel(jobId: string, options: CallOptions = {}): Promise<JobRecord> {
    const answer = await this.http.json('DELETE', `/v1/jobs/${encodeURIComponent(jobId)}`, options);
    return validate(JobRecord, answer.body, 'DELETE /v1/jobs/:id');
  }

  /**
   * A job's events as an async iterable: `queued`, `started`, `token`, `tool_call` (a whole
   * call the model made: `index`, `id`, `name`, `arguments`), `restarted`, `resumed`, and one
   * terminal `done` (an embed job's vectors in `done.embeddings`) or `error`, in `seq` order.
   * Each is typed by its `type`. A dropped connection is resumed with
   * `Last-Event-ID`: no event is lost or repeated. The iteration ends after the terminal
   * event (or when the server answers `204`: everything was delivered).
   *
   * A `restarted` event means the job lost its agent and runs again elsewhere: the text
   * received so far is void, and the tokens that follow are the new answer from its start.
   *
   * Aborting `signal` ends the iteration with the signal's reason; the job keeps running
   * (call {@link cancel} to stop it).
   *
   * @example
   * ```ts
   * let text = '';
   * for await (const event of client.stream(job.id, { signal: AbortSignal.timeout(60_000) })) {
   *   if (event.type === 'token') text += event.text;
   *   else if (event.type === 'restarted') text = '';
   *   else if (event.type === 'error') throw new Error(event.message);
   * }
   * ```
   */
  stream(job: string | { id: string }, options: StreamOptions = {}): JobEventStream {
    const jobId = typeof job === 'string' ? job : job.id;
    return createJobEventStream({ http: this.http, retry: this.options.retry ?? {}, reconnect: this.options.reconnect ?? {} }, jobId, options);
  }

  /**
   * Submits a job and waits for its answer, streaming (and resuming) underneath. Resolves
   * with the final text, the calls the model made (`tool_calls`, for a job with `tools`) and
   * an embed job's vectors (`embeddings`); a job that ends in an `error` event rejects with a
   * {@link SwitchyardError} carrying the event's code (`cancelled`, `deadline_exceeded`,
   * `model_unsupported`, …).
   *
   * @example
   * ```ts
   * const { text, done } = await client.run({ model: 'qwen2.5:0.5b', prompt: 'Say hi' });
   * console.log(text, done.usage.completion_tokens);
   *
   * const { tool_calls } = await client.run({ model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools: [getWeather] });
   * for (const call of tool_calls ?? []) console.log(call.name, call.arguments);
   * ```
   */
  async run(request: JobRequestInput, options: RunOptions = {}): Promise<JobOutcome> {
    const call = options.signal ? { signal: options.signal } : {};
    const job = await this.submit(request, call);
    options.onSubmitted?.(job);
    let text = '';
    let restarts = 0;
    // By index: a call sent again (by a retried attempt that continues the answer) replaces its first copy.
    const toolCalls = new Map<number, ToolCallOutcome>();
    for await (const event of this.stream(job, call)) {
      options.onEvent?.(event);
      if (event.type === 'token') text += event.text;
      else if (event.type === 'tool_call') {
        const { type: _type, seq: _seq, ...toolCall } = event;
        toolCalls.set(toolCall.index, toolCall);
      } else if (event.type === 'restarted') {
        text = '';
        toolCalls.clear();
        restarts++;
      } else if (event.type === 'done') {
        return {
          id: job.id,
          text,
          done: event,
          restarts,
          ...(toolCalls.size > 0 && { tool_calls: [...toolCalls.values()].sort((a, b) => a.index - b.index) }),
          ...(event.embeddings !== undefined && { embeddings: event.embeddings }),
        };
      } else if (event.type === 'error') throw new SwitchyardError(event.code, event.message, { jobId: job.id });
    }
    throw new SwitchyardError(ClientErrorCode.invalidResponse, `the event stream of job ${job.id} ended without a done or error event`, { jobId: job.id });
  }

  /**
   * Embeds text with an embedding model: submits a `kind: "embed"` job and resolves with its
   * vectors, one per input in input order (one for a string), through the same submit +
   * stream path as {@link run} (queueing, resume, backpressure retries). A model that cannot
   * embed is refused with `model_unsupported`. For the usage and timings too, call `run`
   * with `kind: "embed"`: its outcome has `embeddings` and the `done` event.
   *
   * @example
   * ```ts
   * const [query] = await client.embed('nomic-embed-text', 'Why is the sky blue?');
   * const vectors = await client.embed('nomic-embed-text', ['first', 'second'], { dimensions: 256 });
   * ```
   */
  async embed(model: string, input: string | string[], options: EmbedOptions = {}): Promise<number[][]> {
    const { signal, onEvent, onSubmitted, ...fields } = options;
    const outcome = await this.run(
      { ...fields, kind: 'embed', model, input },
      { ...(signal && { signal }), ...(onEvent && { onEvent }), ...(onSubmitted && { onSubmitted }) },
    );
    const expected = typeof input === 'string' ? 1 : input.length;
    if (outcome.embeddings?.length !== expected) {
      throw new SwitchyardError(
        ClientErrorCode.invalidResponse,
        `embed job ${outcome.id} ended with ${outcome.embeddings ? `${outcome.embeddings.length} vector(s)` : 'no embeddings'} for ${expected} input(s)`,
        { jobId: outcome.id },
      );
    }
    return outcome.embeddings;
  }

  /**
   * Models the fleet can serve (`GET /v1/models`), with the agents that have them and their
   * queues.
   *
   * @example
   * ```ts
   * for (const model of await client.models()) console.log(model.id, model.queue?.waiting);
   * ```
   */
  async models(options: CallOptions = {}): Promise<ModelEntry[]> {
    const answer = await this.http.json('GET', '/v1/models', options);
    const data = listData(answer.body, 'GET /v1/models');
    return data.map((entry, index) => {
      const problem = modelEntryProblem(entry);
      if (problem) throw new SwitchyardError(ClientErrorCode.invalidResponse, `GET /v1/models: data[${index}]: ${problem}`);
      return entry as ModelEntry;
    });
  }

  /**
   * Live agents (`GET /v1/agents`): their GPUs and VRAM, loaded and available models, slots.
   *
   * @example
   * ```ts
   * for (const agent of await client.agents()) console.log(agent.id, agent.in_flight, '/', agent.slots);
   * ```
   */
  async agents(options: CallOptions = {}): Promise<AgentHeartbeat[]> {
    const answer = await this.http.json('GET', '/v1/agents', options);
    return listData(answer.body, 'GET /v1/agents').map((entry, index) => validate(AgentHeartbeat, entry, `GET /v1/agents: data[${index}]`));
  }

  /**
   * Drains an agent for maintenance (`POST /admin/agents/:id/drain`, admin key): it claims
   * nothing, says `draining` in its heartbeat, and lets its running jobs finish; it stays up.
   * `undrain` brings it back. Answers the agent's state as the fleet listed it when asked.
   *
   * @example
   * ```ts
   * await admin.drainAgent('gpu-node-3');
   * ```
   */
  async drainAgent(id: string, options: CallOptions & { undo?: boolean } = {}): Promise<AgentDrainAnswer> {
    const action = options.undo === true ? 'undrain' : 'drain';
    const answer = await this.http.json('POST', `/admin/agents/${encodeURIComponent(id)}/${action}`, { body: {}, ...(options.signal && { signal: options.signal }) });
    return checked(answer.body, agentDrainProblem, `POST /admin/agents/:id/${action}`) as AgentDrainAnswer;
  }

  /** The fleet catalog (`GET /admin/models`, admin key): every entry's status, and the models held without one (`unmanaged`). */
  async catalog(options: CallOptions = {}): Promise<CatalogModelStatus[]> {
    const answer = await this.http.json('GET', '/admin/models', { ...(options.signal && { signal: options.signal }) });
    const data = (answer.body as { data?: unknown } | null)?.data;
    if (!Array.isArray(data)) throw new SwitchyardError(ClientErrorCode.invalidResponse, 'GET /admin/models answered without a data array');
    return data.map((item) => checked(item, catalogStatusProblem, 'GET /admin/models') as CatalogModelStatus);
  }

  /** One model's status against the catalog (`GET /admin/models/:name`); `catalog_entry_not_found` when it has no entry and no node holds it. */
  async catalogModel(name: string, options: CallOptions = {}): Promise<CatalogModelStatus> {
    const answer = await this.http.json('GET', `/admin/models/${encodeURIComponent(name)}`, { ...(options.signal && { signal: options.signal }) });
    return checked(answer.body, catalogStatusProblem, 'GET /admin/models/:name') as CatalogModelStatus;
  }

  /** Writes a model's catalog entry whole (`PUT /admin/models/:name`): agents pull and delete to match it. */
  async setCatalogModel(name: string, entry: CatalogEntryInput, options: CallOptions = {}): Promise<CatalogModelStatus> {
    const answer = await this.http.json('PUT', `/admin/models/${encodeURIComponent(name)}`, { body: entry, ...(options.signal && { signal: options.signal }) });
    return checked(answer.body, catalogStatusProblem, 'PUT /admin/models/:name') as CatalogModelStatus;
  }

  /** Where a model's last rollout stands (`GET /admin/models/:name/rollout`): state, nodes per build, each build's figures. */
  async rollout(name: string, options: CallOptions = {}): Promise<RolloutView> {
    const answer = await this.http.json('GET', `/admin/models/${encodeURIComponent(name)}/rollout`, { ...(options.signal && { signal: options.signal }) });
    return checked(answer.body, rolloutViewProblem, 'GET /admin/models/:name/rollout') as RolloutView;
  }

  /** Promotes a canary (every unpinned job to the new build) or aborts the rollout (back to the old build, from the copies nodes kept). */
  async rolloutStep(name: string, step: 'promote' | 'abort', options: CallOptions = {}): Promise<RolloutView> {
    const answer = await this.http.json('POST', `/admin/models/${encodeURIComponent(name)}/rollout/${step}`, { ...(options.signal && { signal: options.signal }) });
    return checked(answer.body, rolloutViewProblem, `POST /admin/models/:name/rollout/${step}`) as RolloutView;
  }

  /** Removes a model's catalog entry (`DELETE /admin/models/:name`): it becomes unmanaged and stays on the nodes that hold it. */
  async removeCatalogModel(name: string, options: CallOptions = {}): Promise<void> {
    await this.http.json('DELETE', `/admin/models/${encodeURIComponent(name)}`, { ...(options.signal && { signal: options.signal }) });
  }

  /**
   * Creates a tenant API key (`POST /admin/keys`, admin key). The answer carries the key
   * itself, which the API never shows again; `limits` become the tenant's overrides.
   *
   * @example
   * ```ts
   * const { key, id } = await admin.createKey({ tenant: 'acme', name: 'ci', limits: { in_flight: 20 } });
   * ```
   */
  async createKey(request: CreateKeyRequest, options: CallOptions = {}): Promise<CreatedApiKey> {
    const answer = await this.http.json('POST', '/admin/keys', { body: request, ...(options.signal && { signal: options.signal }) });
    return checked(answer.body, createdApiKeyProblem, 'POST /admin/keys') as CreatedApiKey;
  }

  /**
   * Every key (`GET /admin/keys`, admin key): ids, prefixes, tenants, flags and times, and
   * the keys from the API's configuration (`source: 'config'`). Never a key itself.
   */
  async listKeys(options: CallOptions = {}): Promise<ApiKeyInfo[]> {
    const answer = await this.http.json('GET', '/admin/keys', options);
    return listData(answer.body, 'GET /admin/keys').map((entry, index) => checked(entry, apiKeyInfoProblem, `GET /admin/keys: data[${index}]`) as ApiKeyInfo);
  }

  /**
   * A new key for the same id, tenant and name (`POST /admin/keys/:id/rotate`). The old key
   * stops working at once, or after `graceS` seconds (at most a day) so clients can switch.
   *
   * @example
   * ```ts
   * const { key } = await admin.rotateKey('k_3xQ…', { graceS: 300 });
   * ```
   */
  async rotateKey(id: string, options: CallOptions & { graceS?: number } = {}): Promise<CreatedApiKey> {
    const body = options.graceS !== undefined ? { grace_s: options.graceS } : {};
    const answer = await this.http.json('POST', `/admin/keys/${encodeURIComponent(id)}/rotate`, { body, ...(options.signal && { signal: options.signal }) });
    return checked(answer.body, createdApiKeyProblem, 'POST /admin/keys/:id/rotate') as CreatedApiKey;
  }

  /** Revokes a key (`DELETE /admin/keys/:id`): refused with 401 from then on, on every API replica within a second. */
  async revokeKey(id: string, options: CallOptions = {}): Promise<ApiKeyInfo & { revoked: true }> {
    const answer = await this.http.json('DELETE', `/admin/keys/${encodeURIComponent(id)}`, options);
    return checked(answer.body, apiKeyInfoProblem, 'DELETE /admin/keys/:id') as ApiKeyInfo & { revoked: true };
  }
}

/** `POST /admin/agents/:id/drain` / `undrain`: the agent and what was asked. */
export interface AgentDrainAnswer {
  id: string;
  action: 'drain' | 'undrain';
  /** Its state in the fleet when the request was made (the agent applies the drain within a message's delivery). */
  state: string;
  in_flight: number;
}

function agentDrainProblem(value: unknown): string | undefined {
  const answer = value as Partial<AgentDrainAnswer> | null;
  if (typeof answer !== 'object' || answer === null) return 'not an object';
  if (typeof answer.id !== 'string') return 'id is not a string';
  if (answer.action !== 'drain' && answer.action !== 'undrain') return 'action is not drain or undrain';
  return undefined;
}

function checked(value: unknown, problemOf: (value: unknown) => string | undefined, what: string): unknown {
  const problem = problemOf(value);
  if (problem) throw new SwitchyardError(ClientErrorCode.invalidResponse, `${what} answered with an unexpected body: ${problem}`);
  return value;
}

interface Schema<T> {
  safeParse(value: unknown): { success: true; data: T } | { success: false; error: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }> } };
}

function validate<T>(schema: Schema<T>, value: unknown, what: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${issue.path.map(String).join('.') || '(body)'}: ${issue.message}`).join('; ');
  throw new SwitchyardError(ClientErrorCode.invalidResponse, `${what} answered with an unexpected body: ${problems}`);
}

function listData(body: unknown, what: string): unknown[] {
  const data = (body as { data?: unknown } | undefined)?.data;
  if (!Array.isArray(data)) throw new SwitchyardError(ClientErrorCode.invalidResponse, `${what} answered without a data array`);
  return data;
}

function isQueue(value: unknown): value is { position: number; depth: number; [field: string]: unknown } {
  const queue = value as { position?: unknown; depth?: unknown } | undefined;
  return typeof queue?.position === 'number' && typeof queue.depth === 'number';
}
