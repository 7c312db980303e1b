import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from '@switchyard/redis';
import { UnrecoverableError, type Job } from 'bullmq';
import { JobRequest, modelToQueueName, type JobData, type JobRequestInput, type JobResult, type RedisKeys } from '@switchyard/protocol';
import { CancelMessage, EventLog, ManualWorker, ScriptedJobs, closeRedis, createRedis } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { parseConfig } from './config.js';
import { ApiError } from './errors.js';
import { apiServices } from './testing/services.js';

const MODEL = 'tiny:1b';

const request = (input: Partial<JobRequestInput> = {}): JobRequest => JobRequest.parse({ model: MODEL, prompt: 'hi', ...input });

/** Rejects with the ApiError `run` throws, for its code. */
async function refusal(run: Promise<unknown>): Promise<ApiError> {
  const error = await run.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(ApiError);
  return error as ApiError;
}

describe('JobService on a real Redis', () => {
  let redis: RedisConnection;
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
  });
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  afterAll(async () => {
    await closeRedis(redis);
  });

  /** The services of one API process under a fresh prefix, with one agent in the fleet. */
  async function setup(limits: { queueDepthLimit?: number } = {}) {
    const services = await apiServices(redis, uniquePrefix('jobsvc'), parseConfig({ redisUrl: testRedis(), ...limits }), MODEL);
    closers.push(() => services.queues.close());
    const { keys, queues, events, ledger, records, jobs, metrics, lifecycle } = services;
    // Writes into a job's log as its agent would (see ScriptedJobs).
    const agentWrites = new ScriptedJobs(redis, keys);
    return { keys, queues, events, agentWrites, ledger, records, jobs, metrics, lifecycle };
  }

  /** An agent's claim of the next job of `MODEL`: the job turns active, locked by the returned token, and its record says `loading`. */
  async function claim(keys: RedisKeys): Promise<{ job: Job<JobData, JobResult>; token: string }> {
    const worker = new ManualWorker<JobData, JobResult>(modelToQueueName(MODEL), async () => ({}) as JobResult, { connection: redis, prefix: keys.bullPrefix });
    worker.on('error', () => undefined);
    closers.push(() => worker.close(true));
    const token = `agent-1:${Math.random()}`;
    const job = await worker.claim(token);
    if (!job) throw new Error('nothing to claim');
    await new ScriptedJobs(redis, keys).lifecycle.claim(job.id!, 'agent-1', { token, number: 1 }, 'agent_lost');
    return { job, token };
  }

  /** Waits for the `queued` event submit sends without awaiting it. */
  async function queuedEventOf(events: EventLog, jobId: string) {
    await expect.poll(async () => (await events.last(jobId))?.type).toBe('queued');
    return events.last(jobId);
  }

  it('submits: admits, enqueues, logs `queued`, announces the work; get answers queued with the position', async () => {
    const { keys, queues, events, jobs } = await setup();
    const announcements: string[] = [];
    const listener = createRedis(testRedis(), 'worker');
    closers.push(() => closeRedis(listener));
    listener.on('message', (_channel: string, message: string) => announcements.push(message));
    await listener.subscribe(keys.workChannel);

    const first = await jobs.submit(request({ metadata: { run: '1' } }), 'acme');
    expect(first).toMatchObject({ created: true, accepted: { model: MODEL, status: 'queued', queue: { position: 0, depth: 1 } } });
    const second = await jobs.submit(request(), 'acme');
    expect(second.accepted.queue).toMatchObject({ position: 1, depth: 2 });

    const job = await queues.get(MODEL).getJob(first.accepted.id);
    expect(job?.data).toMatchObject({ id: first.accepted.id, model: MODEL, tenant: 'acme', request: { prompt: 'hi', metadata: { run: '1' } } });
    expect(await job?.getState()).toMatch(/^(waiting|prioritized)$/);
    expect(await queuedEventOf(events, first.accepted.id)).toMatchObject({ seq: 1, type: 'queued', position: 0, depth: 1 });
    await expect.poll(() => announcements).toEqual([MODEL, MODEL]);

    expect(await jobs.get(first.accepted.id, 'acme')).toMatchObject({ id: first.accepted.id, model: MODEL, status: 'queued', queue_position: 0 });
    expect(await jobs.get(second.accepted.id, 'acme')).toMatchObject({ status: 'queued', queue_position: 1 });
  });

  it('does not show a job to another tenant, nor accept a malformed id', async () => {
    const { jobs } = await setup();
    const { accepted } = await jobs.submit(request(), 'acme');
    expect((await refusal(jobs.get(accepted.id, 'other'))).code).toBe('job_not_found');
    expect((await refusal(jobs.cancel(accepted.id, 'other', 0, async () => false))).code).toBe('job_not_found');
    expect((await refusal(jobs.get('no:such:id', 'acme'))).code).toBe('job_not_found');
    expect((await refusal(jobs.get('unknownjob', 'acme'))).code).toBe('job_not_found');
  });

  it('answers a repeated idempotency key with the first job (per tenant), before any limit applies, also when two race', async () => {
    const { queues, jobs, ledger } = await setup();
    const first = await jobs.submit(request({ idempotency_key: 'k1' }), 'acme');
    const again = await jobs.submit(request({ idempotency_key: 'k1' }), 'acme');
    expect(again).toMatchObject({ created: false, accepted: { id: first.accepted.id, status: 'queued' } });
    // The same key of another tenant is another job.
    const theirs = await jobs.submit(request({ idempotency_key: 'k1' }), 'other');
    expect(theirs.created).toBe(true);
    expect(theirs.accepted.id).not.toBe(first.accepted.id);
    expect(await queues.get(MODEL).count()).toBe(2);
    // One reservation each: the repeat reserved nothing.
    expect((await ledger.reservations()).size).toBe(2);

    // Two submits of a new key at once: the second finds the first's reservation and answers its job.
    const [a, b] = await Promise.all([jobs.submit(request({ idempotency_key: 'k2' }), 'acme'), jobs.submit(request({ idempotency_key: 'k2' }), 'acme')]);
    expect(a.accepted.id).toBe(b.accepted.id);
    expect([a.created, b.created].sort()).toEqual([false, true]);
    expect(await queues.get(MODEL).count()).toBe(3);
  });

  it('answers a repeated idempotency key even when the queue is full', async () => {
    const { jobs } = await setup({ queueDepthLimit: 1 });
    const first = await jobs.submit(request({ idempotency_key: 'k' }), 'acme');
    expect((await refusal(jobs.submit(request(), 'acme'))).code).toBe('queue_full');
    expect(await jobs.submit(request({ idempotency_key: 'k' }), 'acme')).toMatchObject({ created: false, accepted: { id: first.accepted.id } });
  });

  it('cancels a queued job at once: removed from its queue, `error cancelled` logged, reservation released, status kept', async () => {
    const { keys, queues, events, ledger, records, jobs } = await setup();
    const { accepted } = await jobs.submit(request({ prompt: 'keep me' }), 'acme');
    await queuedEventOf(events, accepted.id);
    const published: string[] = [];
    const listener = createRedis(testRedis(), 'worker');
    closers.push(() => closeRedis(listener));
    listener.on('message', (_channel: string, message: string) => published.push(message));
    await listener.subscribe(keys.cancelChannel);

    const waitForEnd = async () => {
      throw new Error('a queued job needs no agent to confirm');
    };
    const { record, settled } = await jobs.cancel(accepted.id, 'acme', 1_000, waitForEnd);
    expect(settled).toBe(true);
    expect(record).toMatchObject({ id: accepted.id, status: 'cancelled' });
    expect(await queues.get(MODEL).getJob(accepted.id)).toBeUndefined();
    expect(await events.last(accepted.id)).toMatchObject({ type: 'error', code: 'cancelled', message: 'cancelled by client while queued' });
    expect(await ledger.positions([accepted.id])).toEqual(new Map());
    // The request stays for an operator's resubmit; no agent was told anything.
    expect(await records.removedRequest(accepted.id)).toMatchObject({ prompt: 'keep me' });
    expect(published).toEqual([]);

    expect(await jobs.get(accepted.id, 'acme')).toMatchObject({ status: 'cancelled', error: { code: 'cancelled' } });
    expect((await refusal(jobs.cancel(accepted.id, 'acme', 0, waitForEnd))).code).toBe('job_finished');
    expect(await jobs.cancelAbandoned(accepted.id, 'disconnect')).toBe(false);
  });

  it('reads a claimed job as loading, then running once `started` is logged, then completed as its `done` is: one record, whatever BullMQ says', async () => {
    const { keys, events, jobs, agentWrites } = await setup();
    const { accepted } = await jobs.submit(request(), 'acme');
    await queuedEventOf(events, accepted.id);
    const { job, token } = await claim(keys);
    expect(job.id).toBe(accepted.id);
    expect(await jobs.get(accepted.id, 'acme')).toMatchObject({ status: 'loading' });

    await agentWrites.append(accepted.id, { type: 'started', agent: 'agent-1', cold: true, load_ms: 40 });
    await agentWrites.append(accepted.id, { type: 'token', text: 'Hel' });
    await agentWrites.append(accepted.id, { type: 'token', text: 'lo' });
    expect(await jobs.get(accepted.id, 'acme')).toMatchObject({ status: 'running', agent: 'agent-1' });

    const usage = { prompt_tokens: 2, completion_tokens: 2 };
    const timings = { queued_ms: 1, load_ms: 40, ttft_ms: 50, total_ms: 60 };
    await agentWrites.append(accepted.id, { type: 'done', finish_reason: 'stop', usage, timings });
    // Still active in BullMQ: the record already says what the stream told.
    expect(await job.getState()).toBe('active');
    expect(await jobs.get(accepted.id, 'acme')).toMatchObject({ status: 'completed', result: { text: 'Hello', finish_reason: 'stop' }, usage, agent: 'agent-1' });

    await job.moveToCompleted({ text: 'Hello', finish_reason: 'stop', usage, timings, agent: 'agent-1' }, token, false);
    expect(await jobs.get(accepted.id, 'acme')).toMatchObject({ status: 'completed', result: { text: 'Hello' }, timings });
    expect((await refusal(jobs.cancel(accepted.id, 'acme', 0, async () => false))).code).toBe('job_finished');
  });

  it('reads a failed job as failed with the code its agent wrote, not the reason BullMQ was given after it', async () => {
    const { keys, events, jobs, agentWrites } = await setup();
    const { accepted } = await jobs.submit(request(), 'acme');
    const { job, token } = await claim(keys);
    await agentWrites.append(accepted.id, { type: 'error', code: 'cancelled', message: 'cancelled by client' });
    // The backend's error reaching BullMQ after the cancellation (what an outside check saw answered once).
    await job.moveToFailed(new UnrecoverableError('backend_error: the backend fell over'), token, false);
    expect(await jobs.get(accepted.id, 'acme')).toMatchObject({ status: 'cancelled', error: { code: 'cancelled', message: 'cancelled by client' } });
  });

  it('cancels a running job through the agent that runs it, and reports whether it confirmed in time', async () => {
    const { keys, events, jobs, queues, agentWrites } = await setup();
    const { accepted } = await jobs.submit(request(), 'acme');
    await queuedEventOf(events, accepted.id);
    await claim(keys);
    await agentWrites.append(accepted.id, { type: 'started', agent: 'agent-1', cold: false, load_ms: 0 });

    // The agent: hears the cancellation and ends the job with `error cancelled`.
    const agent = createRedis(testRedis(), 'worker');
    closers.push(() => closeRedis(agent));
    const heard: CancelMessage[] = [];
    let confirm!: () => void;
    const confirmed = new Promise<void>((resolve) => (confirm = resolve));
    agent.on('message', (_channel: string, message: string) => {
      const parsed = CancelMessage.parse(JSON.parse(message));
      heard.push(parsed);
      void agentWrites.append(parsed.job_id, { type: 'error', code: 'cancelled', message: parsed.reason }).then(() => confirm());
    });
    await agent.subscribe(keys.cancelChannel);

    const waited: number[] = [];
    const { record, settled } = await jobs.cancel(accepted.id, 'acme', 1_500, async (jobId, ms) => {
      expect(jobId).toBe(accepted.id);
      waited.push(ms);
      await confirmed;
      return true;
    });
    expect(heard).toEqual([{ job_id: accepted.id, model: MODEL, reason: 'cancelled by client' }]);
    expect(waited).toEqual([1_500]);
    expect(settled).toBe(true);
    expect(record).toMatchObject({ status: 'cancelled', error: { code: 'cancelled', message: 'cancelled by client' } });
    // The job itself is still the agent's to settle in BullMQ.
    expect(await queues.get(MODEL).getJobState(accepted.id)).toBe('active');
  });

  it('answers a running cancellation the agent did not confirm in time as unsettled, the job still running', async () => {
    const { keys, events, jobs, agentWrites } = await setup();
    const { accepted } = await jobs.submit(request(), 'acme');
    await claim(keys);
    await agentWrites.append(accepted.id, { type: 'started', agent: 'agent-1', cold: false, load_ms: 0 });
    const { record, settled } = await jobs.cancel(accepted.id, 'acme', 0, async () => false);
    expect(settled).toBe(false);
    expect(record).toMatchObject({ status: 'running', agent: 'agent-1' });
  });

  it('expires a queued job past its deadline, but not one an agent holds', async () => {
    const { keys, queues, events, records, jobs } = await setup();
    const late = await jobs.submit(request({ deadline_ms: 60_000, prompt: 'late' }), 'acme');
    await queuedEventOf(events, late.accepted.id);
    const held = await jobs.submit(request({ deadline_ms: 60_000 }), 'acme');
    await queuedEventOf(events, held.accepted.id);
    // The agent takes the first in line; expire the other one first.
    const { job } = await claim(keys);
    const [running, queued] = job.id === late.accepted.id ? [late, held] : [held, late];

    expect(await jobs.expire(running.accepted.id, MODEL, Date.now() - 10)).toEqual({ expired: false, state: 'active' });
    expect(await jobs.expire(queued.accepted.id, MODEL, Date.now() - 10)).toEqual({ expired: true });
    expect(await queues.get(MODEL).getJob(queued.accepted.id)).toBeUndefined();
    expect(await events.last(queued.accepted.id)).toMatchObject({
      type: 'error',
      code: 'deadline_exceeded',
      message: expect.stringMatching(/while the job was queued; it never reached a GPU$/),
    });
    expect(await records.get(queued.accepted.id)).toMatchObject({ status: 'expired' });
    expect(await jobs.get(queued.accepted.id, 'acme')).toMatchObject({ status: 'expired', error: { code: 'deadline_exceeded' } });
    // Gone already: nothing to expire.
    expect(await jobs.expire(queued.accepted.id, MODEL, Date.now())).toEqual({ expired: false, state: 'unknown' });
  });

  it('cancels an abandoned job without a tenant and counts the cause', async () => {
    const { events, jobs, metrics } = await setup();
    const { accepted } = await jobs.submit(request(), 'acme');
    await queuedEventOf(events, accepted.id);
    expect(await jobs.cancelAbandoned(accepted.id, 'disconnect')).toBe(true);
    expect(await events.last(accepted.id)).toMatchObject({ type: 'error', code: 'cancelled', message: 'cancelled: the client went away while queued' });
    const counted = await metrics.jobsCancelled.get();
    expect(counted.values).toEqual([{ labels: { model: MODEL, state: 'queued', cause: 'disconnect' }, value: 1 }]);
    expect(await jobs.cancelAbandoned('neverexisted', 'disconnect')).toBe(false);
  });
  it('refuses before queueing what the shared model info says the model cannot do: 400 model_unsupported naming the capability', async () => {
    const { keys, jobs, queues, metrics } = await setup();
    const share = (capabilities: string[] | undefined) =>
      redis.set(
        keys.modelInfo(MODEL),
        JSON.stringify({ model: MODEL, digest: 'sha256:0123456789abcdef', show: capabilities ? { capabilities } : {}, agent: 'agent-1', updated_at: Date.now() }),
      );
    const chat = (extra: Partial<JobRequestInput> = {}) => request({ prompt: undefined, messages: [{ role: 'user', content: 'hi' }], ...extra });
    const tools = [{ type: 'function' as const, function: { name: 'get_weather' } }];

    await share(['embedding']);
    const refused = await refusal(jobs.submit(request(), 'acme'));
    expect(refused).toMatchObject({ code: 'model_unsupported', status: 400 });
    expect(refused.message).toMatch(/tiny:1b.*does not support generate.*"completion"/);
    expect((await refusal(jobs.submit(chat(), 'acme'))).message).toMatch(/does not support chat/);
    expect((await jobs.submit(request({ prompt: undefined, kind: 'embed', input: ['a', 'b'] }), 'acme')).created).toBe(true);

    await share(['completion']);
    expect((await refusal(jobs.submit(request({ prompt: undefined, kind: 'embed', input: 'a' }), 'acme'))).message).toMatch(/does not support embeddings.*"embedding"/);
    expect((await refusal(jobs.submit(chat({ tools }), 'acme'))).message).toMatch(/does not support tools/);
    expect((await refusal(jobs.submit(chat({ messages: [{ role: 'user', content: 'look', images: ['AAAA'] }] }), 'acme'))).message).toMatch(/"vision"/);
    // tool_choice "none" sends no tools to the model.
    expect((await jobs.submit(chat({ tools, tool_choice: 'none' }), 'acme')).created).toBe(true);

    // No capabilities listed (an older Ollama): nothing is refused early.
    await share(undefined);
    expect((await jobs.submit(chat({ tools }), 'acme')).created).toBe(true);
    expect(await queues.get(MODEL).count()).toBe(3);
    expect((await metrics.jobsRefused.get()).values.find((value) => value.labels.reason === 'model_unsupported')?.value).toBe(5);
  });

  it('reads a completed job with the calls and embeddings its agent reported', async () => {
    const { keys, jobs, lifecycle } = await setup();
    const { accepted } = await jobs.submit(request({ prompt: undefined, kind: 'embed', input: ['a'] }), 'acme');
    const { token } = await claim(keys);
    const usage = { prompt_tokens: 1, completion_tokens: 0 };
    const timings = { queued_ms: 1, load_ms: 0, ttft_ms: 2, total_ms: 3 };
    const done = { type: 'done' as const, finish_reason: 'stop' as const, usage, timings, embeddings: [[0.5, -1]] };
    await lifecycle.finish(accepted.id, { token, number: 1 }, done, { text: '', finish_reason: 'stop', embeddings: [[0.5, -1]], usage, timings, agent: 'agent-1' });
    expect((await jobs.get(accepted.id, 'acme')).result).toEqual({ text: '', finish_reason: 'stop', embeddings: [[0.5, -1]] });

    const called = await jobs.submit(
      request({ prompt: undefined, messages: [{ role: 'user', content: 'weather?' }], tools: [{ type: 'function', function: { name: 'f' } }] }),
      'acme',
    );
    const second = await claim(keys);
    const call = { id: `call_${called.accepted.id}_0`, name: 'f', arguments: { city: 'Paris' } };
    await lifecycle.finish(
      called.accepted.id,
      { token: second.token, number: 1 },
      { ...done, finish_reason: 'tool_calls', embeddings: undefined },
      { text: '', finish_reason: 'tool_calls', tool_calls: [call], usage, timings, agent: 'agent-1' },
    );
    expect((await jobs.get(called.accepted.id, 'acme')).result).toEqual({ text: '', finish_reason: 'tool_calls', tool_calls: [call] });
  });
});
