import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from '../connection.js';
import { JobRequest, redisKeys, type JobData, type JobResult } from '@switchyard/protocol';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { AdmissionLedger } from '../admission-ledger.js';
import { closeRedis, createRedis } from '../connection.js';
import { EventLog } from '../event-log.js';
import { QueueRegistry } from '../queue-registry.js';
import { SharedSubscriber } from '../shared-subscriber.js';
import { JobLifecycle } from './lifecycle.js';
import { JobRecords } from './records.js';

const MODEL = 'tiny:1b';
const timings = { queued_ms: 1, load_ms: 0, ttft_ms: 2, total_ms: 3 };
const usage = { prompt_tokens: 1, completion_tokens: 2 };

describe('JobLifecycle: a job’s transitions on a real Redis', () => {
  let redis: RedisConnection;
  let subscriberConnection: RedisConnection;
  const keys = redisKeys(uniquePrefix('lifecycle'));
  let queues: QueueRegistry;
  let ledger: AdmissionLedger;
  let lifecycle: JobLifecycle;
  let records: JobRecords;
  let log: EventLog;
  let counter = 0;

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
    subscriberConnection = createRedis(testRedis(), 'worker');
    queues = new QueueRegistry(redis, keys);
    ledger = new AdmissionLedger(redis, keys);
    lifecycle = new JobLifecycle(redis, keys, ledger, { recordTtlSeconds: 600, liveTtlSeconds: 1000, finishedTtlSeconds: 50 });
    records = new JobRecords(redis, keys);
    log = new EventLog(redis, keys);
  });
  afterAll(async () => {
    await queues.close();
    await closeRedis(redis);
    await closeRedis(subscriberConnection);
  });

  async function submit(): Promise<string> {
    const id = `life${++counter}`;
    const data: JobData = { id, model: MODEL, tenant: 'acme', request: JobRequest.parse({ model: MODEL, prompt: 'hi' }), submitted_at: Date.now() };
    await lifecycle.enqueue({ queue: queues.get(MODEL), data, priority: 1, queueKey: MODEL, queued: { type: 'queued', position: 0, depth: 1 } });
    return id;
  }
  const types = async (id: string) => (await log.readAfter(id, 0)).map((event) => event.type);
  const first = { token: 'attempt-1', number: 1 };

  it('submit writes the record, the queued event and the BullMQ job together; the stream and the record agree at every step', async () => {
    const subscriber = new SharedSubscriber(subscriberConnection);
    const id = `life${counter + 1}`;
    const live: string[] = [];
    const off = await subscriber.subscribe(keys.jobChannel(id), (message) => live.push(message));
    expect(await submit()).toBe(id);
    expect(await records.get(id)).toMatchObject({ model: MODEL, tenant: 'acme', status: 'queued' });
    expect(await queues.get(MODEL).getJobState(id)).toBe('prioritized');
    expect(await redis.ttl(keys.job(id))).toBeGreaterThan(500);
    expect(await redis.ttl(keys.jobEvents(id))).toBeGreaterThan(900);

    expect(await lifecycle.claim(id, 'agent-1', first, 'agent_lost')).toMatchObject({ taken: true, status: 'loading' });
    expect(await records.get(id)).toMatchObject({ status: 'loading', agent: 'agent-1' });
    expect(await lifecycle.start(id, first, { type: 'started', agent: 'agent-1', cold: false, load_ms: 0 })).toMatchObject({ taken: true, seq: 2, status: 'running' });
    expect(await lifecycle.stream(id, first, { type: 'token', text: 'Hi' })).toMatchObject({ taken: true, seq: 3 });
    const result: JobResult = { text: 'Hi', finish_reason: 'stop', usage, timings, agent: 'agent-1' };
    expect(await lifecycle.finish(id, first, { type: 'done', finish_reason: 'stop', usage, timings }, result)).toMatchObject({ taken: true, seq: 4, status: 'completed' });
    expect(await records.get(id)).toMatchObject({ status: 'completed', result });
    expect(await types(id)).toEqual(['queued', 'started', 'token', 'done']);
    // The replayed payloads are the published ones, seq first; `queued` is not published (nobody can listen before the submit answers).
    await expect.poll(() => live.length).toBe(3);
    expect(live.map((message) => JSON.parse(message).seq)).toEqual([2, 3, 4]);
    expect((await log.readRawAfter(id, 1)).map((event) => event.payload)).toEqual(live);
    expect(await redis.ttl(keys.jobEvents(id))).toBeLessThanOrEqual(50);
    await off();
  });

  it('the first ending wins: a later one, from anyone, is refused and changes nothing', async () => {
    const id = await submit();
    await lifecycle.claim(id, 'agent-1', first, 'agent_lost');
    expect(await lifecycle.finish(id, first, { type: 'error', code: 'cancelled', message: 'cancelled by client' })).toMatchObject({ taken: true, status: 'cancelled' });
    // The backend's failure arriving after the cancellation (the disagreement this replaced).
    expect(await lifecycle.finish(id, first, { type: 'error', code: 'backend_error', message: 'other side closed' })).toEqual({
      taken: false,
      why: 'state',
      status: 'cancelled',
    });
    expect(await lifecycle.abandon(id, { type: 'error', code: 'agent_lost', message: 'lost' })).toMatchObject({ taken: false, why: 'state' });
    expect(await lifecycle.stream(id, first, { type: 'token', text: 'late' })).toMatchObject({ taken: false, why: 'state' });
    expect(await records.get(id)).toMatchObject({ status: 'cancelled', error: { code: 'cancelled', message: 'cancelled by client' } });
    expect(await types(id)).toEqual(['queued', 'error']);
  });

  it('fences: once another attempt claimed the job, the old attempt’s writes are refused', async () => {
    const id = await submit();
    await lifecycle.claim(id, 'agent-1', first, 'agent_lost');
    await lifecycle.start(id, first, { type: 'started', agent: 'agent-1', cold: false, load_ms: 0 });
    const second = { token: 'attempt-2', number: 2 };
    expect(await lifecycle.claim(id, 'agent-2', second, 'agent_lost')).toMatchObject({ taken: true, status: 'loading' });
    expect(await lifecycle.stream(id, first, { type: 'token', text: 'stale' })).toEqual({ taken: false, why: 'fenced', status: 'loading' });
    expect(await lifecycle.finish(id, first, { type: 'done', finish_reason: 'stop', usage, timings })).toMatchObject({ taken: false, why: 'fenced' });
    expect(await types(id)).toEqual(['queued', 'started', 'restarted']);
    expect((await log.last(id))?.type === 'restarted' && (await log.last(id))).toMatchObject({ reason: 'agent_lost', attempt: 2 });
    expect(await records.get(id)).toMatchObject({ status: 'loading', agent: 'agent-2' });
  });

  it('position updates are written only while the job waits; a dequeued job keeps its request', async () => {
    const id = await submit();
    expect(await lifecycle.position(id, { type: 'queued', position: 3, depth: 4, eta_s: 1.5 })).toMatchObject({ taken: true, seq: 2 });
    const request = JobRequest.parse({ model: MODEL, prompt: 'again' });
    expect(await lifecycle.dequeue(id, { type: 'error', code: 'deadline_exceeded', message: 'too late' }, request)).toMatchObject({ taken: true, status: 'expired' });
    expect(await lifecycle.position(id, { type: 'queued', position: 0, depth: 1 })).toMatchObject({ taken: false, why: 'state' });
    expect(await records.removedRequest(id)).toEqual(request);
    expect(await types(id)).toEqual(['queued', 'queued', 'error']);
    // A claimed job takes no position update either. A dequeue may end it: the API takes it
    // only after BullMQ's removal succeeded, which proves no agent holds the job (a job the
    // stalled check put back can still read `loading`); its agent's later writes are refused.
    const held = await submit();
    await lifecycle.claim(held, 'agent-1', first, 'agent_lost');
    expect(await lifecycle.position(held, { type: 'queued', position: 0, depth: 1 })).toMatchObject({ taken: false, why: 'state' });
    expect(await lifecycle.dequeue(held, { type: 'error', code: 'cancelled', message: 'x' }, undefined)).toMatchObject({ taken: true, status: 'cancelled' });
    expect(await lifecycle.stream(held, first, { type: 'token', text: 'late' })).toMatchObject({ taken: false, why: 'state' });
  });

  it('abandon ends a job BullMQ gave up on; a claim adopts a job without a record, nothing else writes to one', async () => {
    const id = await submit();
    await lifecycle.claim(id, 'agent-1', first, 'agent_lost');
    expect(await lifecycle.abandon(id, { type: 'error', code: 'agent_lost', message: 'lost' })).toMatchObject({ taken: true, status: 'failed' });
    expect(await records.get(id)).toMatchObject({ status: 'failed', error: { code: 'agent_lost' } });
    expect(await lifecycle.stream('nosuchjob', first, { type: 'token', text: 'x' })).toEqual({ taken: false, why: 'missing' });
    expect(await lifecycle.finish('nosuchjob', first, { type: 'error', code: 'backend_error', message: 'x' })).toEqual({ taken: false, why: 'missing' });
    expect(await redis.exists(keys.job('nosuchjob'), keys.jobEvents('nosuchjob'))).toBe(0);
    // Enqueued by hand (or by an older API): the claim creates its record from the job's data.
    const data = { id: 'byhand', model: MODEL, tenant: 'ops', submitted_at: 1_700_000_000_000 };
    expect(await lifecycle.claim('byhand', 'agent-1', first, 'agent_lost', data)).toEqual({ taken: true, seq: 1, status: 'loading', adopted: true });
    expect(await records.get('byhand')).toMatchObject({ model: MODEL, tenant: 'ops', created_at: 1_700_000_000_000, status: 'loading', agent: 'agent-1' });
    expect(await redis.ttl(keys.job('byhand'))).toBeGreaterThan(500);
    await lifecycle.start('byhand', first, { type: 'started', agent: 'agent-1', cold: false, load_ms: 0 });
    expect(await redis.ttl(keys.jobEvents('byhand'))).toBeGreaterThan(900);
  });

  it('a failed BullMQ add undoes the submit: no record, no stream, no reservation', async () => {
    const id = `life${++counter}`;
    const data = { id, model: MODEL, tenant: 'acme', request: JobRequest.parse({ model: MODEL, prompt: 'hi' }), submitted_at: Date.now() };
    const broken = { add: async () => Promise.reject(new Error('add failed')), remove: async () => 0 } as unknown as ReturnType<QueueRegistry['get']>;
    await expect(lifecycle.enqueue({ queue: broken, data, priority: 1, queueKey: MODEL, queued: { type: 'queued', position: 0, depth: 1 } })).rejects.toThrow('add failed');
    expect(await redis.exists(keys.job(id), keys.jobEvents(id))).toBe(0);
  });

  it('keeps seq increasing across trimming, and skips stored entries that are not events', async () => {
    const id = await submit();
    await lifecycle.claim(id, 'agent-1', first, 'agent_lost');
    await lifecycle.start(id, first, { type: 'started', agent: 'agent-1', cold: false, load_ms: 0 });
    await redis.xtrim(keys.jobEvents(id), 'MAXLEN', 0);
    expect(await lifecycle.stream(id, first, { type: 'token', text: 'x' })).toMatchObject({ taken: true, seq: 3 });
    await redis.xadd(keys.jobEvents(id), '0-9', 'e', 'not json');
    expect((await log.readAfter(id, 0)).map((event) => event.seq)).toEqual([3]);
  });
});
