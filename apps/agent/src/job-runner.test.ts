import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RedisConnection } from '@switchyard/redis';
import { Queue, UnrecoverableError, type Job } from 'bullmq';
import { pino } from 'pino';
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
} from '@switchyard/backends';
import { JobRequest, modelToQueueName, parseJobFailure, redisKeys, type JobRequestInput, type JobResult, type RedisKeys, type StreamEvent } from '@switchyard/protocol';
import { AdmissionLedger, EventLog, JobLifecycle, ManualWorker, closeRedis, createRedis, type ModelQueue } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { createJobProcessor, type JobRunnerDeps } from './job-runner.js';
import { ModelInventory } from './model-inventory.js';

const MODEL = 'tiny:1b';
/** How the backend spells it: the agent must send this, not the canonical name. */
const BACKEND_NAME = 'tiny:1b';
const silent = pino({ level: 'silent' });

type Script = (request: GenerateRequest, signal: AbortSignal | undefined) => AsyncIterable<GenerateChunk>;

const done = (overrides: Partial<Extract<GenerateChunk, { type: 'done' }>> = {}): GenerateChunk => ({
  type: 'done',
  done_reason: 'stop',
  prompt_tokens: 3,
  completion_tokens: 2,
  total_ms: 20,
  load_ms: 5,
  prompt_eval_ms: 4,
  eval_ms: 10,
  ...overrides,
});

function abortError(): Error {
  return Object.assign(new Error('This operation was aborted'), { name: 'AbortError' });
}

/** Resolves when `signal` fires. */
function aborted(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => signal?.addEventListener('abort', () => resolve(), { once: true }));
}

/**
 * The agent's Backend, in process: one model on disk (resident when `resident`), and a
 * generation per job as the test scripts it.
 */
class ScriptedBackend implements Backend {
  readonly kind = 'ollama' as const;
  readonly url = 'http://fake-backend';
  readonly requests: GenerateRequest[] = [];
  resident = true;
  show_: Record<string, unknown> = {};
  script: Script = async function* () {
    yield done();
  };

  private readonly model: BackendModel = { name: BACKEND_NAME, digest: 'sha256:0123456789abcdef', size_bytes: 5e9 };

  async version(): Promise<string> {
    return 'fake';
  }
  async listModels(): Promise<BackendModel[]> {
    return [this.model];
  }
  async listLoaded(): Promise<BackendLoadedModel[]> {
    return this.resident ? [{ ...this.model, vram_bytes: 6e9 }] : [];
  }
  async show(): Promise<BackendModelInfo> {
    return { raw: this.show_ };
  }
  generate(request: GenerateRequest, signal?: AbortSignal): AsyncIterable<GenerateChunk> {
    this.requests.push(request);
    return this.script(request, signal);
  }
  readonly embedRequests: EmbedRequest[] = [];
  embedScript: (request: EmbedRequest, signal: AbortSignal | undefined) => Promise<EmbedResponse> = async (request) => ({
    embeddings: request.input.map((text) => [text.length, 0.5]),
    prompt_tokens: request.input.length * 3,
    total_ms: 9,
    load_ms: 2,
  });
  embed(request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResponse> {
    this.embedRequests.push(request);
    return this.embedScript(request, signal);
  }
  async load(): Promise<void> {}
  async unload(): Promise<void> {}
  async close(): Promise<void> {}
}

describe('JobRunner (the BullMQ processor) on a real Redis with a scripted backend', () => {
  let redis: RedisConnection;
  let keys: RedisKeys;
  let queue: Queue;
  let events: EventLog;
  let lifecycle: JobLifecycle;
  let backend: ScriptedBackend;
  let inventory: ModelInventory;
  const cancelled = new Set<string>();
  let jobCounter = 0;

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
    keys = redisKeys(uniquePrefix('runner'));
    queue = new Queue(modelToQueueName(MODEL), { connection: redis, prefix: keys.bullPrefix });
    events = new EventLog(redis, keys);
    lifecycle = new JobLifecycle(redis, keys, new AdmissionLedger(redis, keys));
  });
  afterAll(async () => {
    await queue.close();
    await closeRedis(redis);
  });
  beforeEach(async () => {
    backend = new ScriptedBackend();
    inventory = new ModelInventory(backend, silent, { numCtx: 4096, parallel: 1 });
    cancelled.clear();
  });

  function processor(overrides: Partial<JobRunnerDeps> = {}) {
    return createJobProcessor({
      agentId: 'agent-1',
      backend,
      lifecycle,
      inventory,
      logger: silent,
      vramTotalBytes: 24e9,
      tokenCoalesceMs: 0,
      keepAlive: -1,
      wasCancelled: (jobId) => cancelled.has(jobId),
      ...overrides,
    });
  }

  /** A job as the API enqueues it (record, `queued` event, BullMQ job); `data` overrides what the API would write. */
  async function enqueue(input: Partial<JobRequestInput> = {}, data: Record<string, unknown> = {}, target: Queue = queue): Promise<Job<unknown, JobResult>> {
    const id = `job${++jobCounter}`;
    const request = JobRequest.parse({ model: MODEL, prompt: 'hi', ...input });
    const jobData = { id, model: MODEL, tenant: 'acme', request, submitted_at: Date.now(), ...data } as never;
    await lifecycle.enqueue({ queue: target as unknown as ModelQueue, data: jobData, priority: 1, queueKey: MODEL, queued: { type: 'queued', position: 0, depth: 1 } });
    return (await target.getJob(id)) as Job<unknown, JobResult>;
  }

  /** The job's events after the API's `queued` (seq 1): what the agent wrote. */
  const logOf = (job: Job<unknown, JobResult>): Promise<StreamEvent[]> => events.readAfter(job.id!, 1);
  const typesOf = async (job: Job<unknown, JobResult>) => (await logOf(job)).map((event) => event.type);

  /** The failure code and message a rejected run carries to BullMQ. */
  async function failureOf(run: Promise<unknown>): Promise<{ code: string; message: string }> {
    const error = await run.then(
      () => undefined,
      (caught: unknown) => caught,
    );
    // Unrecoverable: BullMQ must not retry a job the agent has ended.
    expect(error).toBeInstanceOf(UnrecoverableError);
    return parseJobFailure((error as Error).message);
  }

  it('streams started, tokens and done for a warm model, and returns the result with its timings', async () => {
    await inventory.refresh();
    backend.script = async function* () {
      yield { type: 'token', text: 'Hel' };
      yield { type: 'token', text: 'lo' };
      yield done();
    };
    // Submitted after the model became resident: warm.
    const job = await enqueue({ system: 'be brief', options: { temperature: 0 } }, { submitted_at: inventory.get(MODEL)!.loaded!.loadedAt + 1 });
    const result = await processor()(job, undefined, new AbortController().signal);

    expect(backend.requests).toEqual([{ model: BACKEND_NAME, keep_alive: -1, prompt: 'hi', system: 'be brief', options: { temperature: 0 } }]);
    expect(result).toMatchObject({ text: 'Hello', finish_reason: 'stop', usage: { prompt_tokens: 3, completion_tokens: 2 }, agent: 'agent-1' });
    expect(result.timings.load_ms).toBe(5);
    expect(result.timings.ttft_ms).toBeLessThanOrEqual(result.timings.total_ms);
    const log = await logOf(job);
    expect(log.map((event) => event.type)).toEqual(['started', 'token', 'token', 'done']);
    expect(log[0]).toMatchObject({ seq: 2, agent: 'agent-1', cold: false, load_ms: 0 });
    expect(log[3]).toMatchObject({ finish_reason: 'stop', usage: result.usage, timings: result.timings });
    // The job's slot is given back, and its duration measured.
    expect(inventory.get(MODEL)).toMatchObject({ inFlight: 0, serviceMs: expect.any(Number) });
  });

  it('says the backend is free at its final line, before the terminal event is written; not for a failed request', async () => {
    await inventory.refresh();
    backend.script = async function* () {
      yield { type: 'token', text: 'Hi' };
      yield done();
    };
    const job = await enqueue();
    const freed: Array<{ token: string; eventsThen: string[] }> = [];
    let pending: Promise<void> | undefined;
    const run = processor({
      backendFreed: (token) => {
        pending = typesOf(job).then((eventsThen) => void freed.push({ token, eventsThen }));
      },
    });
    await run(job, 'lock-1', new AbortController().signal);
    await pending;
    expect(freed).toHaveLength(1);
    expect(freed[0]!.token).toBe('lock-1');
    // The terminal event was not yet in Redis when the slot was given back.
    expect(freed[0]!.eventsThen).not.toContain('done');
    expect(await typesOf(job)).toContain('done');

    backend.script = async function* () {
      yield* [];
      throw new BackendError('bad options', 400);
    };
    const failing = await enqueue();
    freed.length = 0;
    await run(failing, 'lock-2', new AbortController().signal).catch(() => undefined);
    expect(freed).toEqual([]);
  });

  it('sends a chat as messages, and reports a length stop', async () => {
    await inventory.refresh();
    backend.script = async function* () {
      yield { type: 'token', text: 'x' };
      yield done({ done_reason: 'length' });
    };
    const job = await enqueue({ prompt: undefined, messages: [{ role: 'user', content: 'hello' }] });
    const result = await processor()(job, undefined);
    expect(backend.requests[0]).toEqual({ model: BACKEND_NAME, keep_alive: -1, messages: [{ role: 'user', content: 'hello' }] });
    expect(result.finish_reason).toBe('length');
  });

  it('counts a job that waited for this node to load its model as cold, with the load it sat through', async () => {
    backend.resident = false;
    await inventory.refresh();
    const submittedAt = Date.now() - 2_000;
    // The agent loaded the model (700 ms) after the job was submitted.
    inventory.markLoaded(MODEL, undefined, 700);
    backend.script = async function* () {
      yield { type: 'token', text: 'a' };
      yield done({ load_ms: 0 });
    };
    const job = await enqueue({}, { submitted_at: submittedAt });
    const result = await processor()(job, undefined);
    expect((await logOf(job))[0]).toMatchObject({ type: 'started', cold: true, load_ms: 700 });
    expect(result.timings.load_ms).toBe(700);
    // Load time is not queue time too.
    expect(result.timings.queued_ms).toBeLessThanOrEqual(result.timings.ttft_ms - 700);
  });

  it('coalesces tokens after the first and flushes them before done; says started even when no token came', async () => {
    await inventory.refresh();
    backend.script = async function* () {
      yield { type: 'token', text: 'a' };
      yield { type: 'token', text: 'b' };
      yield { type: 'token', text: 'c' };
      yield done();
    };
    const job = await enqueue();
    await processor({ tokenCoalesceMs: 60_000 })(job, undefined);
    expect((await logOf(job)).flatMap((event) => (event.type === 'token' ? [event.text] : []))).toEqual(['a', 'bc']);

    backend.script = async function* () {
      yield done({ completion_tokens: 0 });
    };
    const empty = await enqueue();
    const result = await processor()(empty, undefined);
    expect(result.text).toBe('');
    expect(await typesOf(empty)).toEqual(['started', 'done']);
  });

  it('restarts a job whose backend broke mid-stream (back to its queue, no error event), and fails it with backend_error on its last attempt', async () => {
    await inventory.refresh();
    backend.script = async function* () {
      yield { type: 'token', text: 'a' };
      yield { type: 'token', text: 'b' };
      throw new BackendError('the runner crashed');
    };
    const job = await enqueue();
    const run = processor({ tokenCoalesceMs: 60_000 })(job, undefined);
    const error = await run.then(
      () => undefined,
      (caught: unknown) => caught as Error,
    );
    // Retryable (BullMQ's attempt budget applies), not an UnrecoverableError.
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(UnrecoverableError);
    expect(error?.message).toBe('backend_lost: the runner crashed');
    expect(await typesOf(job)).toEqual(['started', 'token']);
    expect(await redis.hget(keys.job(job.id!), 'status')).toBe('queued');
    expect(inventory.get(MODEL)?.inFlight).toBe(0);
    // A backend that answered (it sent an error line): it is not marked down.
    expect(inventory.backendReachable).toBe(true);

    // The last attempt: the job fails, with the tokens not yet sent dropped.
    const last = await enqueue({ on_restart: 'restart' });
    last.attemptsStarted = 2;
    expect(await failureOf(processor({ tokenCoalesceMs: 60_000 })(last, undefined))).toEqual({ code: 'backend_error', message: 'the runner crashed' });
    const log = await logOf(last);
    expect(log.map((event) => (event.type === 'token' ? event.text : event.type))).toEqual(['restarted', 'started', 'a', 'error']);
  });

  it('fails a model the backend no longer has with model_not_found; a stream cut off, or a backend that stops answering, restarts the job and stops the agent claiming', async () => {
    await inventory.refresh();
    backend.script = async function* () {
      throw new BackendError('model "tiny:1b" not found', 404, 'model_not_found');
    };
    const missing = await enqueue();
    expect((await failureOf(processor()(missing, undefined))).code).toBe('model_not_found');
    expect(await typesOf(missing)).toEqual(['error']);

    backend.script = async function* () {
      yield { type: 'token', text: 'a' };
    };
    const cut = await enqueue();
    await expect(processor()(cut, undefined)).rejects.toThrow('backend_lost: backend closed the stream without a final line');

    backend.script = async function* () {
      throw new BackendError('Ollama failed on /api/generate: ECONNREFUSED', undefined, 'unavailable', { cause: new Error('connect ECONNREFUSED') });
    };
    const refused = await enqueue();
    await expect(processor()(refused, undefined)).rejects.toThrow(/^backend_lost: /);
    expect(inventory.backendReachable).toBe(false);
    await inventory.refresh();
    expect(inventory.backendReachable).toBe(true);
  });

  it('cancels a running job when its signal fires: the backend request is aborted, the job ends cancelled', async () => {
    await inventory.refresh();
    let requestSignal: AbortSignal | undefined;
    backend.script = async function* (_request, signal) {
      requestSignal = signal;
      yield { type: 'token', text: 'a' };
      await aborted(signal);
      throw abortError();
    };
    const job = await enqueue();
    const controller = new AbortController();
    const run = processor()(job, undefined, controller.signal);
    await expect.poll(() => typesOf(job)).toEqual(['started', 'token']);
    controller.abort('cancelled by client');
    expect(await failureOf(run)).toEqual({ code: 'cancelled', message: 'cancelled by client' });
    expect(requestSignal?.aborted).toBe(true);
    expect((await logOf(job)).at(-1)).toMatchObject({ type: 'error', code: 'cancelled', message: 'cancelled by client' });
  });

  it('counts a stream that ends quietly after a cancellation as cancelled, not as a backend failure', async () => {
    await inventory.refresh();
    backend.script = async function* (_request, signal) {
      yield { type: 'token', text: 'a' };
      await aborted(signal);
    };
    const job = await enqueue();
    const controller = new AbortController();
    const run = processor()(job, undefined, controller.signal);
    await expect.poll(() => typesOf(job)).toEqual(['started', 'token']);
    controller.abort('cancelled: the client went away');
    expect((await failureOf(run)).code).toBe('cancelled');
  });

  it('refuses before calling the backend: a cancellation heard earlier, a passed deadline, invalid data, a model gone, a context too large', async () => {
    await inventory.refresh();
    const run = processor();

    const heard = await enqueue();
    cancelled.add(heard.id!);
    expect(await failureOf(run(heard, undefined))).toEqual({ code: 'cancelled', message: 'cancelled before it started' });

    const late = await enqueue({}, { deadline_at: Date.now() - 1_000 });
    expect(await failureOf(run(late, undefined))).toMatchObject({ code: 'deadline_exceeded', message: expect.stringMatching(/before an agent could start the job$/) });

    const invalid = await enqueue({}, { model: 'NOT A MODEL' });
    expect(await failureOf(run(invalid, undefined))).toMatchObject({ code: 'invalid_job', message: expect.stringMatching(/^job data is invalid: model: /) });

    const unknown = await enqueue({}, { model: 'other:7b' });
    expect(await failureOf(run(unknown, undefined))).toEqual({ code: 'model_not_found', message: 'agent agent-1 no longer has model other:7b' });

    expect(backend.requests).toEqual([]);
    for (const job of [heard, late, invalid, unknown]) expect(await typesOf(job)).toEqual(['error']);

    // With the architecture known, a job's own num_ctx is judged against the node's VRAM.
    backend.show_ = {
      model_info: {
        'general.architecture': 'llama',
        'llama.context_length': 131_072,
        'llama.block_count': 32,
        'llama.attention.head_count': 32,
        'llama.attention.head_count_kv': 8,
        'llama.embedding_length': 4096,
      },
    };
    inventory = new ModelInventory(backend, silent, { numCtx: 4096, parallel: 1 });
    await inventory.refresh();
    const huge = await enqueue({ options: { num_ctx: 131_072 } });
    expect(await failureOf(processor()(huge, undefined))).toMatchObject({
      code: 'model_too_large',
      message: expect.stringMatching(/^model tiny:1b with num_ctx 131072 needs [\d.]+ GB of VRAM; agent agent-1 has 24\.0 GB$/),
    });
    expect(backend.requests).toEqual([]);
    await processor()(await enqueue({ options: { num_ctx: 8192 } }), undefined);
    expect(backend.requests).toHaveLength(1);
  });

  it('runs under a BullMQ worker: completes the job with its result, and a worker.cancelJob ends the next one failed, not retried', async () => {
    await inventory.refresh();
    backend.script = async function* (_request, signal) {
      yield { type: 'token', text: 'a' };
      if (backend.requests.length === 1) {
        yield done();
        return;
      }
      await aborted(signal);
      throw abortError();
    };
    // A queue of its own: the other tests leave their jobs waiting in theirs.
    const prefix = `${keys.bullPrefix}-worker`;
    const queue = new Queue(modelToQueueName(MODEL), { connection: redis, prefix });
    const worker = new ManualWorker<unknown, JobResult>(modelToQueueName(MODEL), processor(), { connection: redis, prefix });
    worker.on('error', () => undefined);
    try {
      // What the API enqueues: two attempts, so only an unrecoverable failure stays failed.
      const firstJob = await enqueue({}, {}, queue);
      const first = (await worker.claim('t1'))!;
      await worker.process(first, 't1');
      expect(await queue.getJobState(firstJob.id!)).toBe('completed');
      expect((await queue.getJob(firstJob.id!))?.returnvalue).toMatchObject({ text: 'a', agent: 'agent-1' });
      expect(await redis.hmget(keys.job(firstJob.id!), 'status', 'attempt')).toEqual(['completed', 't1']);

      const secondJob = await enqueue({}, {}, queue);
      const second = (await worker.claim('t2'))!;
      const running = worker.process(second, 't2');
      await expect.poll(async () => (await events.last(secondJob.id!))?.type).toBe('token');
      expect(worker.cancelJob(secondJob.id!, 'cancelled by client')).toBe(true);
      await running;
      expect(await queue.getJobState(secondJob.id!)).toBe('failed');
      expect((await queue.getJob(secondJob.id!))?.failedReason).toBe('cancelled: cancelled by client');
      expect(await redis.hget(keys.job(secondJob.id!), 'status')).toBe('cancelled');
    } finally {
      await worker.close(true);
      await queue.close();
    }
  });

  it('continues a retried job from the text already streamed (`resumed`), or starts over with on_restart: restart', async () => {
    await inventory.refresh();
    // The first attempt streamed "Hel" and was lost.
    const job = await enqueue();
    const first = { token: 'attempt-1', number: 1 };
    await lifecycle.claim(job.id!, 'agent-0', first, 'agent_lost');
    await lifecycle.start(job.id!, first, { type: 'started', agent: 'agent-0', cold: false, load_ms: 0 });
    await lifecycle.stream(job.id!, first, { type: 'token', text: 'Hel' });
    await lifecycle.requeue(job.id!, first);
    backend.script = async function* () {
      yield { type: 'token', text: 'lo' };
      yield done();
    };
    job.attemptsStarted = 2;
    const result = await processor()(job, undefined);
    // Asked to continue the partial answer (a chat ending in it), and the answer is whole.
    expect(backend.requests.at(-1)).toMatchObject({
      messages: [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'Hel' },
      ],
    });
    expect(result.text).toBe('Hello');
    const log = await logOf(job);
    expect(log.map((event) => event.type)).toEqual(['started', 'token', 'resumed', 'started', 'token', 'done']);
    expect(log[2]).toMatchObject({ attempt: 2, after_seq: log[1]!.seq });

    const fresh = await enqueue({ on_restart: 'restart' });
    fresh.attemptsStarted = 2;
    await processor()(fresh, undefined);
    const restarted = await logOf(fresh);
    expect(restarted.map((event) => event.type)).toEqual(['restarted', 'started', 'token', 'done']);
    expect(restarted[0]).toMatchObject({ reason: 'agent_lost', attempt: 2 });
    expect(backend.requests.at(-1)).toMatchObject({ prompt: 'hi' });
  });

  it('drops a request that hangs before its first chunk once the backend’s health reads fail: the job continues elsewhere', async () => {
    await inventory.refresh();
    let requestSignal: AbortSignal | undefined;
    backend.script = async function* (_request, signal) {
      requestSignal = signal;
      await aborted(signal);
      throw abortError();
    };
    const job = await enqueue();
    const run = processor({ hungAfterMs: 0 })(job, undefined);
    await expect.poll(() => requestSignal !== undefined).toBe(true);
    // The inventory's read of the backend failed (a timeout of /api/tags, say).
    inventory.emit('unreachable', new Error('headers timeout'));
    await expect(run).rejects.toThrow(/^backend_lost: the backend stopped answering/);
    expect(requestSignal?.aborted).toBe(true);
    expect(await redis.hget(keys.job(job.id!), 'status')).toBe('queued');
  });

  it('drops a job that ended before its claim (a cancel won the race): the refused claim aborts the backend request, nothing is written', async () => {
    await inventory.refresh();
    let requestSignal: AbortSignal | undefined;
    backend.script = async function* (_request, signal) {
      requestSignal = signal;
      await aborted(signal);
      throw abortError();
    };
    const job = await enqueue();
    await lifecycle.dequeue(job.id!, { type: 'error', code: 'cancelled', message: 'cancelled by client while queued' }, undefined);
    expect((await failureOf(processor()(job, undefined))).code).toBe('cancelled');
    expect(requestSignal?.aborted).toBe(true);
    expect(await typesOf(job)).toEqual(['error']);
  });

  it('fences an attempt that lost the job: its writes are refused, its backend request aborted, the job ends once', async () => {
    await inventory.refresh();
    let requestSignal: AbortSignal | undefined;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    backend.script = async function* (_request, signal) {
      requestSignal = signal;
      yield { type: 'token', text: 'a' };
      await gate;
      yield { type: 'token', text: 'stale' };
      await aborted(signal);
      throw abortError();
    };
    const job = await enqueue({}, {}, queue);
    const run = processor()(job, 'attempt-1');
    await expect.poll(() => typesOf(job)).toEqual(['started', 'token']);
    // The job moved on: a second attempt claimed it (as after a lapsed heartbeat) and finished it.
    const second = { token: 'attempt-2', number: 2 };
    expect((await lifecycle.claim(job.id!, 'agent-2', second, 'agent_lost')).taken).toBe(true);
    const timings = { queued_ms: 0, load_ms: 0, ttft_ms: 1, total_ms: 2 };
    await lifecycle.finish(job.id!, second, { type: 'done', finish_reason: 'stop', usage: { prompt_tokens: 1, completion_tokens: 1 }, timings });
    release();
    await run.then(
      () => undefined,
      () => undefined,
    );
    expect(requestSignal?.aborted).toBe(true);
    expect(await typesOf(job)).toEqual(['started', 'token', 'restarted', 'done']);
    expect(await redis.hget(keys.job(job.id!), 'status')).toBe('completed');
  });

  const TOOLS = [
    { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object' } } },
    { type: 'function' as const, function: { name: 'get_time' } },
  ];

  it('streams each tool call as a tool_call event, returns them with finish_reason tool_calls, and sends history in Ollama’s shape', async () => {
    await inventory.refresh();
    backend.script = async function* () {
      yield { type: 'token', text: 'Let me check.' };
      yield { type: 'tool_calls', calls: [{ name: 'get_weather', arguments: { city: 'Paris' } }] };
      yield { type: 'tool_calls', calls: [{ name: 'get_time', arguments: {} }] };
      yield done();
    };
    const messages = [
      { role: 'user' as const, content: 'weather?' },
      { role: 'assistant' as const, content: '', tool_calls: [{ id: 'call_a', function: { name: 'get_weather', arguments: { city: 'Rome' } } }] },
      { role: 'tool' as const, content: 'sunny', tool_call_id: 'call_a' },
    ];
    const job = await enqueue({ prompt: undefined, messages, tools: TOOLS, parallel_tool_calls: true });
    const result = await processor({ tokenCoalesceMs: 60_000 })(job, undefined);

    expect(backend.requests[0]).toEqual({
      model: BACKEND_NAME,
      keep_alive: -1,
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_weather', arguments: { city: 'Rome' } } }] },
        { role: 'tool', content: 'sunny', tool_name: 'get_weather' },
      ],
      tools: TOOLS,
      parallel_tool_calls: true,
    });
    const calls = [
      { id: `call_${job.id}_0`, name: 'get_weather', arguments: { city: 'Paris' } },
      { id: `call_${job.id}_1`, name: 'get_time', arguments: {} },
    ];
    expect(result).toMatchObject({ text: 'Let me check.', finish_reason: 'tool_calls', tool_calls: calls });
    const log = await logOf(job);
    expect(log.map((event) => event.type)).toEqual(['started', 'token', 'tool_call', 'tool_call', 'done']);
    expect(log[2]).toMatchObject({ index: 0, ...calls[0] });
    expect(log[3]).toMatchObject({ index: 1, ...calls[1] });
    expect(log[4]).toMatchObject({ finish_reason: 'tool_calls' });
  });

  it('offers tools by tool_choice: none sends none, a named one only that tool, auto and required all (with the choice)', async () => {
    await inventory.refresh();
    const chat = { prompt: undefined, messages: [{ role: 'user' as const, content: 'x' }], tools: TOOLS };
    await processor()(await enqueue({ ...chat, tool_choice: 'none' }), undefined);
    expect(backend.requests.at(-1)).not.toHaveProperty('tools');
    expect(backend.requests.at(-1)).not.toHaveProperty('tool_choice');
    const named = { type: 'function' as const, function: { name: 'get_time' } };
    await processor()(await enqueue({ ...chat, tool_choice: named }), undefined);
    expect(backend.requests.at(-1)).toMatchObject({ tools: [TOOLS[1]], tool_choice: named });
    for (const choice of ['auto', 'required'] as const) {
      await processor()(await enqueue({ ...chat, tool_choice: choice }), undefined);
      expect(backend.requests.at(-1)).toMatchObject({ tools: TOOLS, tool_choice: choice });
    }
    const result = await processor()(await enqueue(chat), undefined);
    expect(backend.requests.at(-1)).toMatchObject({ tools: TOOLS });
    expect(backend.requests.at(-1)).not.toHaveProperty('tool_choice');
    expect(result.finish_reason).toBe('stop');
  });

  it('restarts (not continues) a retried job that has tools', async () => {
    await inventory.refresh();
    const job = await enqueue({ prompt: undefined, messages: [{ role: 'user', content: 'x' }], tools: TOOLS });
    const first = { token: 'attempt-1', number: 1 };
    await lifecycle.claim(job.id!, 'agent-0', first, 'agent_lost');
    await lifecycle.start(job.id!, first, { type: 'started', agent: 'agent-0', cold: false, load_ms: 0 });
    await lifecycle.stream(job.id!, first, { type: 'token', text: 'Hel' });
    await lifecycle.requeue(job.id!, first);
    job.attemptsStarted = 2;
    await processor()(job, undefined);
    expect(await typesOf(job)).toEqual(['started', 'token', 'restarted', 'started', 'done']);
    expect(backend.requests.at(-1)).toMatchObject({ messages: [{ role: 'user', content: 'x' }] });
  });

  it('fails with model_unsupported, message kept, when the backend says the model does not support it', async () => {
    await inventory.refresh();
    const message = 'registry.ollama.ai/library/tiny:1b does not support tools';
    backend.script = async function* () {
      yield* [];
      throw new BackendError(message, 400, 'bad_request');
    };
    const job = await enqueue({ prompt: undefined, messages: [{ role: 'user', content: 'x' }], tools: TOOLS });
    expect(await failureOf(processor()(job, undefined))).toEqual({ code: 'model_unsupported', message });
    expect((await logOf(job)).at(-1)).toMatchObject({ type: 'error', code: 'model_unsupported', message });
  });

  it('runs an embed job: started when its call begins, done with the vectors in input order, result with usage and timings', async () => {
    await inventory.refresh();
    const job = await enqueue({ kind: 'embed', prompt: undefined, input: ['a', 'bbb'], truncate: false, dimensions: 2, options: { num_ctx: 512 } });
    const result = await processor()(job, undefined);
    expect(backend.embedRequests).toEqual([{ model: BACKEND_NAME, input: ['a', 'bbb'], keep_alive: -1, truncate: false, dimensions: 2, options: { num_ctx: 512 } }]);
    expect(backend.requests).toEqual([]);
    expect(result).toMatchObject({
      text: '',
      finish_reason: 'stop',
      embeddings: [
        [1, 0.5],
        [3, 0.5],
      ],
      usage: { prompt_tokens: 6, completion_tokens: 0 },
      agent: 'agent-1',
    });
    expect(result.timings.total_ms).toBeGreaterThanOrEqual(0);
    const log = await logOf(job);
    expect(log.map((event) => event.type)).toEqual(['started', 'done']);
    expect(log[1]).toMatchObject({ finish_reason: 'stop', embeddings: result.embeddings, usage: result.usage, timings: result.timings });

    const single = await processor()(await enqueue({ kind: 'embed', prompt: undefined, input: 'hello' }), undefined);
    expect(single.embeddings).toEqual([[5, 0.5]]);
  });

  it('batches concurrent embed jobs of one model into one backend call', async () => {
    await inventory.refresh();
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const defaultScript = backend.embedScript;
    backend.embedScript = async (request, signal) => {
      if (backend.embedRequests.length === 1) await gate;
      return defaultScript(request, signal);
    };
    const run = processor();
    const head = run(await enqueue({ kind: 'embed', prompt: undefined, input: 'x' }), undefined);
    await expect.poll(() => backend.embedRequests.length).toBe(1);
    const jobs = await Promise.all(Array.from({ length: 5 }, (_, i) => enqueue({ kind: 'embed', prompt: undefined, input: 'y'.repeat(i + 1) })));
    const runs = jobs.map((job) => run(job, undefined));
    await new Promise((resolve) => setTimeout(resolve, 30));
    release();
    await head;
    const results = await Promise.all(runs);
    expect(backend.embedRequests).toHaveLength(2);
    expect(backend.embedRequests[1]!.input).toEqual(['y', 'yy', 'yyy', 'yyyy', 'yyyyy']);
    expect(results.map((result) => result.embeddings)).toEqual([1, 2, 3, 4, 5].map((n) => [[n, 0.5]]));
    expect(results.reduce((sum, result) => sum + result.usage.prompt_tokens, 0)).toBe(15);
  });

  it('cancels an embed job in flight; maps embed failures as for generate', async () => {
    await inventory.refresh();
    backend.embedScript = (_request, signal) => new Promise((_resolve, reject) => signal?.addEventListener('abort', () => reject(signal.reason), { once: true }));
    const controller = new AbortController();
    const job = await enqueue({ kind: 'embed', prompt: undefined, input: 'x' });
    const run = processor()(job, undefined, controller.signal);
    await expect.poll(() => typesOf(job)).toEqual(['started']);
    controller.abort('client cancelled');
    expect((await failureOf(run)).code).toBe('cancelled');
    expect(await typesOf(job)).toEqual(['started', 'error']);

    const message = '"tiny:1b" does not support embeddings';
    backend.embedScript = () => Promise.reject(new BackendError(message, 400, 'bad_request'));
    expect(await failureOf(processor()(await enqueue({ kind: 'embed', prompt: undefined, input: 'x' }), undefined))).toEqual({ code: 'model_unsupported', message });

    backend.embedScript = () => Promise.reject(new BackendError('model "tiny:1b" not found', 404, 'model_not_found'));
    expect((await failureOf(processor()(await enqueue({ kind: 'embed', prompt: undefined, input: 'x' }), undefined))).code).toBe('model_not_found');

    // A backend failure is the backend's: the job goes back to its queue to run again.
    backend.embedScript = () => Promise.reject(new BackendError('runner crashed', 500, 'backend_error'));
    await expect(processor()(await enqueue({ kind: 'embed', prompt: undefined, input: 'x' }), undefined)).rejects.toThrow(/^backend_lost: runner crashed/);
  });
});
