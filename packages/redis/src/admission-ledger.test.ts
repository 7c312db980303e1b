import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { redisKeys } from '@switchyard/protocol';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { AdmissionLedger, type AdmitRequest } from './admission-ledger.js';
import { closeRedis, createRedis } from './connection.js';
import { EventLog } from './event-log.js';

const LIMITS = { queueDepth: 100, tenantInFlight: 100, tenantModelInFlight: 100, globalInFlight: 1000 };
const TUNING = {
  drainWindowMs: 60_000,
  rateSamples: 20,
  batchOffsetMs: 60_000,
  fairStepMs: 2_000,
  retryCapMs: 600_000,
  retryFallbackMs: 5_000,
  epochMaxAgeMs: 24 * 3600_000,
};

let counter = 0;
function request(overrides: Partial<AdmitRequest> = {}): AdmitRequest {
  return {
    jobId: `job-${++counter}`,
    model: 'm:1',
    tenant: 'a',
    priority: 'interactive',
    detach: false,
    loadMs: 0,
    capacity: 1,
    idempotencyTtlS: 60,
    limits: LIMITS,
    tuning: TUNING,
    ...overrides,
  };
}

describe('AdmissionLedger on a real Redis', () => {
  let redis: Redis;
  const connections: Redis[] = [];

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
    for (let i = 0; i < 4; i++) connections.push(createRedis(testRedis(), 'worker'));
  });
  afterAll(async () => {
    await closeRedis(redis);
    await Promise.all(connections.map(closeRedis));
  });

  it('reserves, counts in flight, and releases through the event log', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const ledger = new AdmissionLedger(redis, keys);
    const log = new EventLog(redis, keys);
    const first = await ledger.admit(request({ jobId: 'j1' }));
    expect(first).toMatchObject({ kind: 'admitted', position: 0, depth: 1 });
    await ledger.admit(request({ jobId: 'j2', tenant: 'b' }));
    expect(await ledger.inFlight()).toEqual({ g: 2, 't:a': 1, 't:b': 1, 'tm:a|m:1': 1, 'tm:b|m:1': 1, 'm:m:1': 2 });

    await log.append('j1', { type: 'started', agent: 'x', cold: true, load_ms: 800 });
    expect((await ledger.stats(['m:1'], 60_000, 20)).get('m:1')).toMatchObject({ depth: 1, inFlight: 2 });
    expect(await redis.hget(keys.admission.loadMs, 'm:1')).toBe('800');
    await log.append('j1', { type: 'done', finish_reason: 'stop', usage: { prompt_tokens: 1, completion_tokens: 1 }, timings: { queued_ms: 0, load_ms: 0, ttft_ms: 0, total_ms: 0 } });
    await log.append('j2', { type: 'error', code: 'cancelled', message: 'bye' });
    expect(await ledger.inFlight()).toEqual({});
    const stats = (await ledger.stats(['m:1'], 60_000, 20)).get('m:1')!;
    // j1 ran (a completion); j2 was cancelled while queued (no drain).
    expect(stats).toMatchObject({ depth: 0, inFlight: 0 });
    expect(stats.drainPerS).toBeCloseTo(1, 1);
    expect(await redis.hgetall(keys.admission.outcomes)).toEqual({ 'completed|m:1': '1', 'cancelled|m:1': '1' });
    // A second terminal event changes nothing.
    expect(await ledger.release('j1', 'done')).toBe(false);
    expect(await redis.llen(keys.admission.waitSamples)).toBe(1);
  });

  it('refuses in the documented order and never overshoots under concurrent admissions', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const ledgers = connections.map((connection) => new AdmissionLedger(connection, keys));
    const limits = { queueDepth: 1000, tenantInFlight: 7, tenantModelInFlight: 1000, globalInFlight: 1000 };
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) => ledgers[i % ledgers.length]!.admit(request({ tenant: 'busy', limits }))),
    );
    expect(results.filter((r) => r.kind === 'admitted')).toHaveLength(7);
    expect(results.filter((r) => r.kind === 'refused' && r.code === 'tenant_limit')).toHaveLength(33);
    expect((await ledgers[0]!.inFlight())['t:busy']).toBe(7);

    // Depth is checked before the tenant: a full queue says queue_full even to a tenant at its limit.
    const depthFirst = await ledgers[0]!.admit(request({ tenant: 'busy', limits: { ...limits, queueDepth: 7 } }));
    expect(depthFirst).toMatchObject({ kind: 'refused', code: 'queue_full', depth: 7, limit: 7 });
    const global = await ledgers[0]!.admit(request({ tenant: 'other', limits: { ...limits, globalInFlight: 7 } }));
    expect(global).toMatchObject({ kind: 'refused', code: 'global_limit' });
    const perModel = await ledgers[0]!.admit(request({ tenant: 'busy', limits: { ...limits, tenantInFlight: 100, tenantModelInFlight: 7 } }));
    expect(perModel).toMatchObject({ kind: 'refused', code: 'tenant_model_limit' });
  });

  it('reads limits from Redis at every admission, over the configured defaults', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const ledger = new AdmissionLedger(redis, keys);
    await redis.hset(keys.admission.limits, 'queue_depth:m:1', '1');
    expect((await ledger.admit(request())).kind).toBe('admitted');
    expect(await ledger.admit(request())).toMatchObject({ kind: 'refused', code: 'queue_full' });
    await redis.hdel(keys.admission.limits, 'queue_depth:m:1');
    await redis.hset(keys.admission.limits, 'tenant_in_flight', '1');
    // A per-tenant value from the keys file beats the Redis default; a per-tenant Redis value beats both.
    expect((await ledger.admit(request({ limits: { ...LIMITS, tenantInFlightOverride: 5 } }))).kind).toBe('admitted');
    await redis.hset(keys.admission.limits, 'tenant_in_flight:a', '2');
    expect(await ledger.admit(request({ limits: { ...LIMITS, tenantInFlightOverride: 5 } }))).toMatchObject({ kind: 'refused', code: 'tenant_limit', limit: 2 });
  });

  it('computes Retry-After from the drain rate and spreads refused clients over the drain', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const ledger = new AdmissionLedger(redis, keys);
    const now = Date.now();
    // Ten completions over the last 4.5 s: 10 / 5 s (to now) = 2 per second.
    for (let i = 0; i < 10; i++) {
      await ledger.admit(request({ jobId: `d${i}`, now: now - 6_000 }));
      await ledger.started(`d${i}`, { now: now - 6_000 });
      await ledger.release(`d${i}`, 'done', '', now - 5_000 + i * 500);
    }
    expect((await ledger.stats(['m:1'], 60_000, 20, now)).get('m:1')!.drainPerS).toBeCloseTo(2, 1);
    const limits = { ...LIMITS, queueDepth: 2 };
    await ledger.admit(request({ now, limits }));
    await ledger.admit(request({ now, limits }));
    const refusals = [];
    for (let i = 0; i < 3; i++) refusals.push(await ledger.admit(request({ now, limits })));
    // One start frees room: 1 / (2 per s) = 500 ms; the next refused clients get the following slots.
    expect(refusals.map((r) => (r.kind === 'refused' ? r.retryAfterMs : -1))).toEqual([500, 1000, 1500]);
  });

  it('orders by virtual start: batch after later interactive work, and fair share by tenant in flight', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const ledger = new AdmissionLedger(redis, keys);
    const now = Date.now();
    const admitted = async (overrides: Partial<AdmitRequest>) => {
      const result = await ledger.admit(request({ now, ...overrides }));
      if (result.kind !== 'admitted') throw new Error(JSON.stringify(result));
      return result;
    };
    const a1 = await admitted({ jobId: 'a1', tenant: 'a' });
    const a2 = await admitted({ jobId: 'a2', tenant: 'a' });
    const a3 = await admitted({ jobId: 'a3', tenant: 'a' });
    const batch = await admitted({ jobId: 'b1', tenant: 'c', priority: 'batch' });
    const b1 = await admitted({ jobId: 'bb1', tenant: 'b', now: now + 100 });
    expect(a2.priority - a1.priority).toBe(20);
    expect(b1.position).toBe(1);
    expect(batch.priority).toBeGreaterThan(a3.priority);
    const positions = await ledger.positions(['a1', 'a2', 'a3', 'b1', 'bb1']);
    expect(['a1', 'bb1', 'a2', 'a3', 'b1'].map((id) => positions.get(id)?.rank)).toEqual([0, 1, 2, 3, 4]);
  });

  it('never lets a tenant’s new job overtake its own older ones when its in-flight count drops', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const ledger = new AdmissionLedger(redis, keys);
    const now = Date.now();
    for (const id of ['t1', 't2', 't3']) await ledger.admit(request({ jobId: id, now }));
    await ledger.release('t1', 'done', '', now + 50);
    await ledger.release('t2', 'done', '', now + 60);
    // Only t3 in flight now: by count the new job would rank at now + 100 + 2 s, before t3 (now + 4 s).
    await ledger.admit(request({ jobId: 't4', now: now + 100 }));
    const positions = await ledger.positions(['t3', 't4']);
    expect([positions.get('t3')?.rank, positions.get('t4')?.rank]).toEqual([0, 1]);
  });

  it('refuses a deadline the estimated wait cannot meet, and answers a repeated idempotency key with the first job', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const ledger = new AdmissionLedger(redis, keys);
    const now = Date.now();
    for (let i = 0; i < 4; i++) {
      await ledger.admit(request({ jobId: `r${i}`, now: now - 5_000 }));
      await ledger.release(`r${i}`, 'done', '', now - 4_000 + i * 1000);
    }
    // 4 completions in 4 s → 1 per second; 5 jobs ahead of one free slot → about 5 s.
    for (let i = 0; i < 5; i++) await ledger.admit(request({ now }));
    const late = await ledger.admit(request({ now, deadlineMs: 2_000 }));
    expect(late).toMatchObject({ kind: 'refused', code: 'deadline_unreachable' });
    const ok = await ledger.admit(request({ now, deadlineMs: 30_000 }));
    expect(ok).toMatchObject({ kind: 'admitted', position: 5 });

    const once = await ledger.admit(request({ jobId: 'idem-1', idempotencyKey: 'k' }));
    expect(once.kind).toBe('admitted');
    expect(await ledger.admit(request({ jobId: 'idem-2', idempotencyKey: 'k' }))).toEqual({ kind: 'duplicate', jobId: 'idem-1' });
    expect((await ledger.admit(request({ jobId: 'idem-3', idempotencyKey: 'k', tenant: 'other' }))).kind).toBe('admitted');
  });

  it('rebuilds drifted counters from the reservations', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const ledger = new AdmissionLedger(redis, keys);
    await ledger.admit(request({ jobId: 'x1' }));
    await redis.hset(keys.admission.inflight, 't:a', '9', 't:ghost', '3');
    await redis.zadd(keys.admission.waiting('m:1'), 1, 'ghost-job');
    expect(await ledger.recompute(['m:1'])).toBe(3);
    expect(await ledger.inFlight()).toEqual({ g: 1, 't:a': 1, 'tm:a|m:1': 1, 'm:m:1': 1 });
    expect(await redis.zrange(keys.admission.waiting('m:1'), '0', '-1')).toEqual(['x1']);
    expect(await ledger.recompute(['m:1'])).toBe(0);
  });
});
