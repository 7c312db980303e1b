import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from '@switchyard/redis';
import { pino } from 'pino';
import { JobRequest, modelToQueueName, type JobData, type JobRequestInput, type JobResult } from '@switchyard/protocol';
import { ManualWorker, ScriptedJobs, StreamPresence, closeRedis, createRedis } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { parseConfig } from './config.js';
import { Maintenance } from './maintenance.js';
import { apiServices } from './testing/services.js';

const MODEL = 'tiny:1b';
const GRACE_MS = 15_000;
const UPDATE_INTERVAL_MS = 1_000;
/** Maintenance's settle time for a reservation whose submit may still be writing it. */
const SETTLE_MS = 10_000;
const silent = pino({ level: 'silent' });

const request = (input: Partial<JobRequestInput> = {}): JobRequest => JobRequest.parse({ model: MODEL, prompt: 'hi', ...input });

describe('Maintenance on a real Redis, driven by its own clock', () => {
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

  /**
   * One deployment under a fresh prefix: an API's services, one agent in the fleet, and
   * `replica()` for a Maintenance (one per API replica) whose clock is `clock.now`.
   */
  async function setup() {
    const config = parseConfig({ redisUrl: testRedis(), disconnectGraceMs: GRACE_MS, queuedUpdateIntervalMs: UPDATE_INTERVAL_MS });
    const services = await apiServices(redis, uniquePrefix('maint'), config, MODEL);
    const { keys, queues, events, ledger, fleet, metrics, admission, jobs, lifecycle } = services;
    closers.push(() => queues.close());
    const clock = { now: Date.now() };
    const replica = () => {
      const maintenance = new Maintenance({
        redis,
        keys,
        ledger,
        admission,
        jobs,
        lifecycle,
        queues,
        presence: new StreamPresence(redis, keys),
        fleet,
        metrics,
        config,
        logger: silent,
        now: () => clock.now,
      });
      closers.push(() => maintenance.stop());
      return maintenance;
    };
    /** Submits and waits for the `queued` event submit sends without awaiting it. */
    const submit = async (input: Partial<JobRequestInput> = {}) => {
      const { accepted } = await jobs.submit(request(input), 'acme');
      await expect.poll(async () => (await events.last(accepted.id))?.type).toBe('queued');
      return accepted.id;
    };
    /** An agent's claim of the next job: active in BullMQ, nothing streamed yet (a cold load). */
    const claimNext = async () => {
      const worker = new ManualWorker<JobData, JobResult>(modelToQueueName(MODEL), async () => ({}) as JobResult, { connection: redis, prefix: keys.bullPrefix });
      worker.on('error', () => undefined);
      closers.push(() => worker.close(true));
      const job = await worker.claim('agent-1:token');
      if (!job) throw new Error('nothing to claim');
      await lifecycle.claim(job.id!, 'agent-1', { token: 'agent-1:token', number: 1 }, 'agent_lost');
      return job;
    };
    /** Someone streams the job's events (on another replica): its presence mark, renewed until the test ends. */
    const listen = async (jobId: string) => {
      const elsewhere = new StreamPresence(redis, keys);
      closers.push(async () => elsewhere.close());
      await elsewhere.hold(jobId);
    };
    const stateOf = (jobId: string) => queues.get(MODEL).getJobState(jobId);
    const typesOf = async (jobId: string) => (await events.readAfter(jobId, 0)).map((event) => event.type);
    return { keys, config, queues, events, ledger, jobs, metrics, clock, replica, submit, claimNext, listen, stateOf, typesOf };
  }

  it('expires a queued job once its deadline passed, and no other', async () => {
    const { keys, clock, replica, submit, stateOf, events, typesOf } = await setup();
    const maintenance = replica();
    const soon = await submit({ deadline_ms: 5_000 });
    const later = await submit({ deadline_ms: 60_000 });
    const never = await submit();

    await maintenance.tick();
    expect(await typesOf(soon)).toEqual(['queued']);

    clock.now += 6_000;
    await maintenance.tick();
    expect(await stateOf(soon)).toBe('unknown');
    expect(await events.last(soon)).toMatchObject({ type: 'error', code: 'deadline_exceeded' });
    expect(await redis.zscore(keys.admission.deadlines, soon)).toBeNull();
    for (const id of [later, never]) {
      expect(await stateOf(id)).toMatch(/^(waiting|prioritized)$/);
      expect(await typesOf(id)).toEqual(['queued']);
    }
    expect(await redis.zscore(keys.admission.deadlines, later)).not.toBeNull();
  });

  it('leaves a due job an agent holds to the agent, and a due job without a queue entry until its submit had time to write it', async () => {
    const { keys, clock, replica, submit, claimNext, ledger, events, stateOf } = await setup();
    const maintenance = replica();
    const held = await submit({ deadline_ms: 1_000 });
    expect((await claimNext()).id).toBe(held);
    // Reserved, not yet enqueued: a submit in progress on another replica.
    const admitted = await ledger.admit({
      jobId: 'writing',
      model: MODEL,
      tenant: 'acme',
      priority: 'interactive',
      deadlineMs: 1_000,
      detach: false,
      loadMs: 0,
      capacity: 1,
      idempotencyTtlS: 60,
      limits: { queueDepth: 100, tenantInFlight: 100, tenantModelInFlight: 100, globalInFlight: 100 },
      tuning: { drainWindowMs: 60_000, rateSamples: 20, batchOffsetMs: 0, fairStepMs: 0, retryCapMs: 60_000, retryFallbackMs: 5_000, epochMaxAgeMs: 3_600_000 },
      now: clock.now,
    });
    expect(admitted.kind).toBe('admitted');

    clock.now += 2_000;
    await maintenance.tick();
    // The agent checks the deadline itself before starting; the sweep is done with it.
    expect(await stateOf(held)).toBe('active');
    expect((await events.last(held))?.type).toBe('queued');
    expect(await redis.zscore(keys.admission.deadlines, held)).toBeNull();
    // Still due: its job may appear any moment.
    expect(await redis.zscore(keys.admission.deadlines, 'writing')).not.toBeNull();

    clock.now += SETTLE_MS;
    await maintenance.tick();
    expect(await redis.zscore(keys.admission.deadlines, 'writing')).toBeNull();
  });

  it('cancels a watched job whose streams went away once the grace has passed, but not a detached one, one still streamed, or one never streamed', async () => {
    const { keys, clock, replica, submit, ledger, listen, events, stateOf, typesOf } = await setup();
    const maintenance = replica();
    const unwatched = await submit();
    const detached = await submit({ detach: true });
    const streamed = await submit();
    const neverStreamed = await submit();
    const t0 = clock.now;
    for (const id of [unwatched, detached, streamed]) await ledger.watch(id, t0);
    await listen(streamed);

    clock.now = t0 + GRACE_MS - 1;
    await maintenance.tick();
    expect(await typesOf(unwatched)).toEqual(['queued']);

    clock.now = t0 + GRACE_MS;
    await maintenance.tick();
    expect(await stateOf(unwatched)).toBe('unknown');
    expect(await events.last(unwatched)).toMatchObject({ type: 'error', code: 'cancelled', message: 'cancelled: the client went away while queued' });
    expect(await redis.zscore(keys.admission.watched, unwatched)).toBeNull();
    for (const id of [detached, streamed, neverStreamed]) expect(await stateOf(id)).toMatch(/^(waiting|prioritized)$/);
    // A stream still open counts as seen: its grace starts again when it closes. The mark is
    // refreshed at most once a second, so it holds the previous round's time.
    expect(Number(await redis.zscore(keys.admission.watched, streamed))).toBe(t0 + GRACE_MS - 1);
  });

  it('lets a stream that came back within the grace keep its job', async () => {
    const { clock, replica, submit, ledger, typesOf } = await setup();
    const maintenance = replica();
    const jobId = await submit();
    const t0 = clock.now;
    await ledger.watch(jobId, t0);
    // Reopened (and closed again) later: the grace counts from then.
    await ledger.watch(jobId, t0 + 10_000);
    clock.now = t0 + GRACE_MS;
    await maintenance.tick();
    expect(await typesOf(jobId)).toEqual(['queued']);
    clock.now = t0 + 10_000 + GRACE_MS;
    await maintenance.tick();
    expect(await typesOf(jobId)).toEqual(['queued', 'error']);
  });

  it('sends a streamed job position updates at most once per interval, only when its position changed, never after `started`', async () => {
    const { keys, clock, replica, submit, ledger, listen, events, jobs } = await setup();
    const maintenance = replica();
    const ahead = await submit();
    const jobId = await submit();
    await ledger.watch(jobId, clock.now);
    await listen(jobId);
    const queuedEvents = async () =>
      (await events.readAfter(jobId, 0)).flatMap((event) => (event.type === 'queued' ? [{ position: event.position, depth: event.depth }] : []));
    expect(await queuedEvents()).toEqual([{ position: 1, depth: 2 }]);

    // The first round sends where it stands (this replica has told it nothing yet).
    const t0 = clock.now;
    await maintenance.tick();
    expect(await queuedEvents()).toEqual([
      { position: 1, depth: 2 },
      { position: 1, depth: 2 },
    ]);

    // The job ahead leaves; within the interval nothing is sent.
    await jobs.cancel(ahead, 'acme', 0, async () => false);
    clock.now = t0 + UPDATE_INTERVAL_MS - 1;
    await maintenance.tick();
    expect((await queuedEvents()).length).toBe(2);

    clock.now = t0 + UPDATE_INTERVAL_MS;
    await maintenance.tick();
    expect((await queuedEvents()).at(-1)).toEqual({ position: 0, depth: 1 });
    expect((await queuedEvents()).length).toBe(3);

    // Nothing changed: nothing sent, however long it has been.
    clock.now = t0 + 5 * UPDATE_INTERVAL_MS;
    await maintenance.tick();
    expect((await queuedEvents()).length).toBe(3);

    // Started: the position of a running job means nothing.
    await new ScriptedJobs(redis, keys).append(jobId, { type: 'started', agent: 'agent-1', cold: false, load_ms: 0 });
    await submit();
    clock.now = t0 + 10 * UPDATE_INTERVAL_MS;
    await maintenance.tick();
    expect((await events.readAfter(jobId, 0)).map((event) => event.type)).toEqual(['queued', 'queued', 'queued', 'started']);
  });

  it('runs on one replica at a time: the holder of the lock, until it stops', async () => {
    const { keys, clock, replica, submit, stateOf } = await setup();
    const first = replica();
    const second = replica();
    await first.tick();
    const holder = await redis.get(keys.admission.lock('maintenance'));
    expect(holder).not.toBeNull();
    // Lapses within a few periods if its holder dies (max(2 s, 4 intervals)).
    expect(await redis.pttl(keys.admission.lock('maintenance'))).toBeLessThanOrEqual(2_000);

    const due = await submit({ deadline_ms: 1_000 });
    clock.now += 2_000;
    await second.tick();
    expect(await stateOf(due)).toMatch(/^(waiting|prioritized)$/);
    // Renewing its own lock is holding it.
    await first.tick();
    expect(await redis.get(keys.admission.lock('maintenance'))).toBe(holder);
    expect(await stateOf(due)).toBe('unknown');

    const next = await submit({ deadline_ms: 1_000 });
    clock.now += 2_000;
    await first.stop();
    expect(await redis.get(keys.admission.lock('maintenance'))).toBeNull();
    await second.tick();
    expect(await redis.get(keys.admission.lock('maintenance'))).not.toBe(holder);
    expect(await stateOf(next)).toBe('unknown');
  });

  it('marks a claimed job (still loading) as started, at most once a second, and feeds its wait to the metrics', async () => {
    const { clock, replica, submit, claimNext, ledger, metrics } = await setup();
    const maintenance = replica();
    const t0 = clock.now;
    await maintenance.tick();
    const jobId = await submit();
    await claimNext();

    clock.now = t0 + 999;
    await maintenance.tick();
    expect((await ledger.positions([jobId])).get(jobId)?.state).toBe('q');

    clock.now = t0 + 1_000;
    await maintenance.tick();
    expect((await ledger.positions([jobId])).get(jobId)?.state).toBe('r');
    // The start wrote a wait sample; the next round hands it to the histogram.
    await maintenance.tick();
    const waits = await metrics.queueWait.get();
    expect(waits.values.find((value) => value.metricName === 'switchyard_queue_wait_seconds_count')).toMatchObject({ labels: { model: MODEL }, value: 1 });
  });

  it('reconciles: releases the count of a job that left BullMQ without a terminal event once it is past the settle time, and rebuilds drifted counters', async () => {
    const { keys, clock, replica, submit, queues, ledger, metrics } = await setup();
    const maintenance = replica();
    const jobId = await submit();
    // Gone from BullMQ without an event (an agent died twice; BullMQ dropped it).
    await queues.get(MODEL).remove(jobId);
    const t0 = clock.now;
    await maintenance.tick();
    expect((await ledger.positions([jobId])).has(jobId)).toBe(true);

    // The reservation's submission time is the real clock's, a little after t0.
    clock.now = t0 + SETTLE_MS + 1_000;
    await maintenance.tick();
    expect((await ledger.positions([jobId])).has(jobId)).toBe(false);
    expect(await ledger.inFlight()).toEqual({});
    const repairs = async () => Object.fromEntries((await metrics.admissionRepairs.get()).values.map((value) => [value.labels.action, value.value]));
    expect(await repairs()).toEqual({ released: 1 });

    // Counters that disagree with the reservations are rebuilt, at the next reconcile interval.
    await redis.hincrby(keys.admission.inflight, 'g', 3);
    clock.now += 1_000;
    await maintenance.tick();
    expect(await ledger.inFlight()).toEqual({ g: 3 });
    clock.now += 5_000;
    await maintenance.tick();
    expect(await ledger.inFlight()).toEqual({});
    // Drift counts the counters (or set members) that were wrong: one here.
    expect(await repairs()).toEqual({ released: 1, drift: 1 });
  });
});
