import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from './connection.js';
import { redisKeys } from '@switchyard/protocol';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { AdmissionLedger, type AdmitRequest, type ReleaseKind } from './admission-ledger.js';
import { closeRedis, createRedis } from './connection.js';
import { ScriptedJobs } from './job/scripted-job.js';

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
  let redis: RedisConnection;
  const connections: RedisConnection[] = [];

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
    for (let i = 0; i < 4; i++) connections.push(createRedis(testRedis(), 'worker'));
  });
  afterAll(async () => {
    await closeRedis(redis);
    await Promise.all(connections.map(closeRedis));
  });

  it('reserves, counts in flight, and releases through the job transitions', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const ledger = new AdmissionLedger(redis, keys);
    // The job's writers (its agent, the API's cancel), through the transitions that settle the ledger.
    const log = new ScriptedJobs(redis, keys);
    const first = await ledger.admit(request({ jobId: 'j1' }));
    expect(first).toMatchObject({ kind: 'admitted', position: 0, depth: 1 });
    await ledger.admit(request({ jobId: 'j2', tenant: 'b' }));
    expect(await ledger.inFlight()).toEqual({ g: 2, 't:a': 1, 't:b': 1, 'tm:a|m:1': 1, 'tm:b|m:1': 1, 'm:m:1': 2 });

    await log.append('j1', { type: 'started', agent: 'x', cold: true, load_ms: 800 });
    expect((await ledger.stats(['m:1'], 60_000, 20)).get('m:1')).toMatchObject({ depth: 1, inFlight: 2 });
    expect(await redis.hget(keys.admission.loadMs, 'm:1')).toBe('800');
    await log.append('j1', {
      type: 'done',
      finish_reason: 'stop',
      usage: { prompt_tokens: 1, completion_tokens: 1 },
      timings: { queued_ms: 0, load_ms: 0, ttft_ms: 0, total_ms: 0 },
    });
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
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => ledgers[i % ledgers.length]!.admit(request({ tenant: 'busy', limits }))));
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

  it('takes a running job out of every set at release, and a queued one too', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const a = keys.admission;
    const ledger = new AdmissionLedger(redis, keys);
    const now = Date.now();
    const members = async (id: string) => ({
      waiting: await redis.zscore(a.waiting('m:1'), id),
      since: await redis.zscore(a.since('m:1'), id),
      deadlines: await redis.zscore(a.deadlines, id),
      watched: await redis.zscore(a.watched, id),
      reservation: await redis.hget(a.jobs, id),
    });
    const gone = { waiting: null, since: null, deadlines: null, watched: null, reservation: null };
    for (const id of ['ran', 'queued']) {
      await ledger.admit(request({ jobId: id, now, deadlineMs: 60_000 }));
      await ledger.watch(id, now);
    }
    expect(await members('ran')).toMatchObject({ waiting: expect.any(String), since: expect.any(String), deadlines: String(now + 60_000), watched: String(now) });
    expect(await ledger.started('ran', { now: now + 10 })).toBe(true);
    // Started: out of the queue's sets, still watched and reserved.
    expect(await members('ran')).toMatchObject({ waiting: null, since: null, deadlines: null, watched: String(now) });
    expect(await ledger.release('ran', 'done', '', now + 20)).toBe(true);
    expect(await ledger.release('queued', 'error', 'cancelled', now + 30)).toBe(true);
    expect(await members('ran')).toEqual(gone);
    expect(await members('queued')).toEqual(gone);
    expect(await ledger.inFlight()).toEqual({});
    // Only the job that ran is a completion.
    for (const scope of ['m:m:1', 't:a', 'g'] as const) expect(await redis.zrange(a.drain(scope), '0', '-1')).toEqual(['ran']);
  });

  it('keeps the drain sets bounded and expiring without trimming at every completion', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const a = keys.admission;
    const ledger = new AdmissionLedger(redis, keys);
    const sets = [a.drain('m:m:1'), a.drain('t:a'), a.drain('g')] as const;
    const now = Date.now() - 3_600_000;
    // One job stays queued throughout: every scope has work in flight, so no set has a TTL.
    await ledger.admit(request({ jobId: 'keeper', now }));
    // A completion older than an hour goes at the next trim.
    await ledger.admit(request({ jobId: 'old', now: now - 2 * 3_600_000 }));
    await ledger.started('old', { now: now - 2 * 3_600_000 });
    await ledger.release('old', 'done', '', now - 2 * 3_600_000);
    // Every outcome that adds a completion, so that each of the model's four counters takes its turn.
    const endings: Array<[ReleaseKind, string]> = [
      ['done', ''],
      ['error', 'backend_error'],
      ['error', 'cancelled'],
      ['error', 'deadline_exceeded'],
    ];
    const total = 2_300;
    let largest = [0, 0, 0];
    for (let i = 0; i < total; i++) {
      const at = now + i;
      await ledger.admit(request({ jobId: `c${i}`, now: at }));
      await ledger.started(`c${i}`, { now: at, sample: false });
      const [kind, code] = endings[i % endings.length]!;
      await ledger.release(`c${i}`, kind, code, at);
      const sizes = (await redis.multi().zcard(sets[0]).zcard(sets[1]).zcard(sets[2]).exec())!.map(([, n]) => n as number);
      largest = largest.map((n, j) => Math.max(n, sizes[j]!));
    }
    // The model's set: at most 2000 plus 31 per outcome counter that adds completions; the
    // tenant's and the fleet's (trimmed by rank at every write): 2000.
    expect(largest[0]).toBeGreaterThan(2_000);
    expect(largest[0]).toBeLessThanOrEqual(2_000 + 4 * 31);
    expect(largest.slice(1)).toEqual([2_000, 2_000]);
    for (const key of sets) {
      expect(await redis.zscore(key, 'old'), key).toBeNull();
      // Whatever a rate read sees: the newest completions.
      expect(await redis.zrevrange(key, 0, 19), key).toEqual(Array.from({ length: 20 }, (_, i) => `c${total - 1 - i}`));
      expect(await redis.pttl(key), key).toBe(-1);
    }
    // The scopes go idle: the sets expire an hour later.
    await ledger.release('keeper', 'error', 'cancelled', now + total);
    for (const key of sets) {
      const ttl = await redis.pttl(key);
      expect(ttl, key).toBeGreaterThan(3_590_000);
      expect(ttl, key).toBeLessThanOrEqual(3_600_000);
    }
    // New work: no TTL while it is in flight.
    await ledger.admit(request({ jobId: 'again', now: now + total }));
    for (const key of sets) expect(await redis.pttl(key), key).toBe(-1);
  });

  it('repairs a drain set that carries a TTL while its scope is busy at the next trim', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const a = keys.admission;
    const ledger = new AdmissionLedger(redis, keys);
    const now = Date.now();
    await ledger.admit(request({ jobId: 'keeper', now }));
    // As a version that set the TTL at every write would have left it.
    await redis.zadd(a.drain('g'), now, 'earlier');
    await redis.pexpire(a.drain('g'), 3_600_000);
    for (let i = 0; i < 32; i++) {
      await ledger.admit(request({ jobId: `r${i}`, now }));
      await ledger.started(`r${i}`, { now, sample: false });
      await ledger.release(`r${i}`, 'done', '', now + i);
    }
    expect(await redis.pttl(a.drain('g'))).toBe(-1);
  });

  it('reads every limit field with the documented precedence, and fails on a corrupt counter as before', async () => {
    const keys = redisKeys(uniquePrefix('ledger'));
    const ledger = new AdmissionLedger(redis, keys);
    const a = keys.admission;
    await redis.hset(a.limits, 'global_in_flight', '1');
    expect((await ledger.admit(request())).kind).toBe('admitted');
    expect(await ledger.admit(request({ tenant: 'b' }))).toMatchObject({ kind: 'refused', code: 'global_limit', limit: 1, current: 1 });
    await redis.hdel(a.limits, 'global_in_flight');
    // tenant_model_in_flight: the tenant's Redis value over the keys file's, the file's over the fleet's.
    await redis.hset(a.limits, 'tenant_model_in_flight', '1');
    expect((await ledger.admit(request({ limits: { ...LIMITS, tenantModelInFlightOverride: 2 } }))).kind).toBe('admitted');
    await redis.hset(a.limits, 'tenant_model_in_flight:a', '5');
    expect((await ledger.admit(request({ limits: { ...LIMITS, tenantModelInFlightOverride: 2 } }))).kind).toBe('admitted');
    expect(await ledger.admit(request({ model: 'm:2', limits: { ...LIMITS, tenantModelInFlight: 1 } }))).toMatchObject({ kind: 'admitted' });
    expect(await ledger.inFlight()).toEqual({ g: 4, 't:a': 4, 'tm:a|m:1': 3, 'tm:a|m:2': 1, 'm:m:1': 3, 'm:m:2': 1 });

    await redis.hset(a.inflight, 't:a', 'x');
    await expect(ledger.admit(request())).rejects.toThrow(/not an integer/);
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
