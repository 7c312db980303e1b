import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { ModelSpec } from './model-spec.js';
import { Scheduler, type AcquireRequest, type Lease, type SchedulerOptions } from './scheduler.js';
import { SimCounters } from './sim-counters.js';
import { SimError } from './sim-error.js';

const GiB = 2 ** 30;
const model = (name: string, vramGiB: number) => ModelSpec.parse({ name, size_bytes: GiB, vram_bytes: vramGiB * GiB });

function scheduler(options: Partial<SchedulerOptions> = {}) {
  const counters = new SimCounters();
  const sched = new Scheduler({
    vramBytes: 4 * GiB,
    vramOverheadBytes: 0,
    numParallel: 2,
    maxQueue: 100,
    maxLoadedModels: 0,
    timeScale: 0,
    loadBytesPerS: 1e9,
    loadOverheadMs: 0,
    counters,
    logger: pino({ level: 'silent' }),
    ...options,
  });
  return { sched, counters };
}

function request(m: ModelSpec, extra: Partial<AcquireRequest> = {}): AcquireRequest {
  return { model: m, numCtx: 2048, keepAliveMs: 60_000, slot: true, signal: new AbortController().signal, ...extra };
}

/** Whether a promise has settled after the event loop has had a few turns (loads take a timer tick). */
async function settled(promise: Promise<unknown>): Promise<boolean> {
  let done = false;
  promise.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 1));
  return done;
}

const names = (sched: Scheduler) =>
  sched
    .runnersView()
    .map((runner) => runner.name.replace(/:latest$/, ''))
    .sort();

describe('Scheduler', () => {
  it('loads a model, then hands out num_parallel slots and queues the rest', async () => {
    const { sched, counters } = scheduler();
    const a = model('a', 1);
    const first = await sched.acquire(request(a));
    expect(first.coldStart).toBe(true);
    const second = await sched.acquire(request(a));
    expect(second.coldStart).toBe(false);
    const third = sched.acquire(request(a));
    expect(await settled(third)).toBe(false);
    expect(sched.queuedCount).toBe(1);
    expect(sched.runningCount).toBe(2);
    first.release();
    first.release(); // idempotent
    (await third).release();
    second.release();
    expect(sched.runningCount).toBe(0);
    expect(counters.loadsTotal).toBe(1);
  });

  it('serves an embedding model one request at a time, and budgets its KV cache for one sequence', async () => {
    const { sched } = scheduler({ numParallel: 4, vramOverheadBytes: 0 });
    const vec = ModelSpec.parse({ name: 'vec', size_bytes: GiB, embedding: {}, block_count: 12, head_count: 12, head_count_kv: 12, embedding_length: 768 });
    const chat = ModelSpec.parse({ name: 'chat', size_bytes: GiB, block_count: 12, head_count: 12, head_count_kv: 12, embedding_length: 768 });
    expect(sched.parallelFor(vec)).toBe(1);
    expect(sched.parallelFor(chat)).toBe(4);
    const kvPerToken = 2 * 64 * 12 * 2 * 12;
    expect(sched.vramNeed(vec, 2048)).toBe(GiB + kvPerToken * 2048);
    expect(sched.vramNeed(chat, 2048)).toBe(GiB + kvPerToken * 2048 * 4);
    const first = await sched.acquire(request(vec));
    const second = sched.acquire(request(vec));
    expect(await settled(second)).toBe(false);
    // A load-only request takes no slot: it is not held up by the running call.
    (await sched.acquire(request(vec, { slot: false }))).release();
    first.release();
    (await second).release();
  });

  it('evicts idle models soonest-expiry first, and only as many as needed', async () => {
    const { sched, counters } = scheduler();
    (await sched.acquire(request(model('long', 1), { keepAliveMs: 600_000 }))).release();
    (await sched.acquire(request(model('short', 1), { keepAliveMs: 60_000 }))).release();
    (await sched.acquire(request(model('mid', 1), { keepAliveMs: 300_000 }))).release();
    expect(names(sched)).toEqual(['long', 'mid', 'short']);
    (await sched.acquire(request(model('big', 2)))).release();
    // 1 GiB was free, big needs 2: only the soonest-expiring model goes.
    expect(names(sched)).toEqual(['big', 'long', 'mid']);
    expect(counters.evictionsTotal).toBe(1);
    (await sched.acquire(request(model('bigger', 3), { keepAliveMs: 900_000 }))).release();
    // Now big (60 s) and mid (5 min) go; long (10 min) stays.
    expect(names(sched)).toEqual(['bigger', 'long']);
    expect(counters.evictionsTotal).toBe(3);
    expect(counters.vramHighWaterBytes).toBeLessThanOrEqual(4 * GiB);
  });

  it('never evicts a busy model: the load waits until it is idle', async () => {
    const { sched } = scheduler();
    const busy = await sched.acquire(request(model('busy', 3)));
    const waiting = sched.acquire(request(model('other', 2)));
    expect(await settled(waiting)).toBe(false);
    expect(names(sched)).toEqual(['busy']);
    busy.release();
    const lease = await waiting;
    expect(names(sched)).toEqual(['other']);
    lease.release();
  });

  it('blocks requests behind a load that cannot start yet (head of line), even for resident models', async () => {
    const { sched } = scheduler({ numParallel: 1 });
    const a = model('a', 3);
    const holder = await sched.acquire(request(a));
    const big = sched.acquire(request(model('b', 2)));
    const moreA = sched.acquire(request(a));
    holder.release();
    // b was first in line: it evicts a once a is idle, and the later request for a waits for b.
    const bLease = await big;
    expect(await settled(moreA)).toBe(false);
    bLease.release();
    (await moreA).release();
    expect(names(sched)).toEqual(['a']);
  });

  it('refuses a model bigger than the whole GPU with Ollama wording', async () => {
    const { sched } = scheduler();
    await expect(sched.acquire(request(model('huge', 5)))).rejects.toThrow('model requires more system memory (5.0 GiB) than is available (4.0 GiB)');
  });

  it('refuses with queue_full when max_queue requests wait', async () => {
    const { sched, counters } = scheduler({ numParallel: 1, maxQueue: 2 });
    const a = model('a', 1);
    const holder = await sched.acquire(request(a));
    const w1 = sched.acquire(request(a));
    const w2 = sched.acquire(request(a));
    const refused = sched.acquire(request(a));
    await expect(refused).rejects.toBeInstanceOf(SimError);
    await expect(refused).rejects.toMatchObject({ code: 'queue_full', status: 503 });
    expect(counters.rejectedTotal).toBe(1);
    holder.release();
    (await w1).release();
    (await w2).release();
  });

  it('drops an aborted request from the queue and unblocks the ones behind it', async () => {
    const { sched } = scheduler();
    const busy = await sched.acquire(request(model('a', 3)));
    const controller = new AbortController();
    const blocked = sched.acquire(request(model('b', 2), { signal: controller.signal }));
    const small = sched.acquire(request(model('c', 1)));
    expect(await settled(small)).toBe(false);
    controller.abort();
    await expect(blocked).rejects.toMatchObject({ name: 'AbortError' });
    (await small).release();
    busy.release();
    expect(sched.queuedCount).toBe(0);
  });

  it('respects max_loaded_models', async () => {
    const { sched } = scheduler({ maxLoadedModels: 2 });
    (await sched.acquire(request(model('a', 1), { keepAliveMs: 1_000 }))).release();
    (await sched.acquire(request(model('b', 1), { keepAliveMs: 2_000 }))).release();
    (await sched.acquire(request(model('c', 1)))).release();
    expect(names(sched)).toEqual(['b', 'c']);
  });

  it('reloads a model asked for with another context size', async () => {
    const { sched, counters } = scheduler();
    const a = ModelSpec.parse({ name: 'a', size_bytes: GiB / 2, block_count: 4, head_count: 4, head_count_kv: 4, embedding_length: 512 });
    (await sched.acquire(request(a, { numCtx: 2048 }))).release();
    (await sched.acquire(request(a, { numCtx: 8192 }))).release();
    expect(sched.runnersView().map((runner) => runner.numCtx)).toEqual([8192]);
    expect(counters.loadsTotal).toBe(2);
    expect(sched.vramNeed(a, 8192)).toBeGreaterThan(sched.vramNeed(a, 2048));
  });

  it('unloads a keep_alive 0 model when its last request ends', async () => {
    const { sched } = scheduler();
    const a = model('a', 1);
    const one = await sched.acquire(request(a, { keepAliveMs: 0 }));
    const two = await sched.acquire(request(a, { keepAliveMs: 0 }));
    one.release();
    expect(names(sched)).toEqual(['a']);
    two.release();
    expect(names(sched)).toEqual([]);
  });

  it('expire() unloads an idle model now and a busy one when it goes idle', async () => {
    const { sched } = scheduler();
    (await sched.acquire(request(model('idle', 1)))).release();
    const busy = await sched.acquire(request(model('busy', 1)));
    expect(sched.expire('idle:latest')).toBe(true);
    expect(sched.expire('busy:latest')).toBe(true);
    expect(sched.expire('absent:latest')).toBe(false);
    expect(names(sched)).toEqual(['busy']);
    busy.release();
    expect(names(sched)).toEqual([]);
  });

  it('stays inside the VRAM budget under a random mixed load', async () => {
    const { sched, counters } = scheduler({ vramBytes: 6 * GiB, numParallel: 2, maxLoadedModels: 3, maxQueue: 1_000 });
    const models = [model('m1', 1), model('m2', 2), model('m3', 3), model('m4', 4), model('m5', 5)];
    let seed = 12345;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const work = Array.from({ length: 200 }, async () => {
      const m = models[Math.floor(random() * models.length)] as ModelSpec;
      const lease: Lease = await sched.acquire(request(m, { keepAliveMs: random() < 0.2 ? 0 : 60_000 }));
      expect(sched.vramUsedBytes).toBeLessThanOrEqual(6 * GiB);
      await new Promise((resolve) => setTimeout(resolve, Math.floor(random() * 3)));
      lease.release();
    });
    await Promise.all(work);
    expect(counters.vramHighWaterBytes).toBeLessThanOrEqual(6 * GiB);
    expect(sched.queuedCount).toBe(0);
    expect(sched.runningCount).toBe(0);
  });

  it('close() rejects waiting requests', async () => {
    const { sched } = scheduler({ numParallel: 1 });
    const a = model('a', 1);
    await sched.acquire(request(a));
    const waiting = sched.acquire(request(a));
    sched.close();
    await expect(waiting).rejects.toMatchObject({ code: 'shutting_down' });
    await expect(sched.acquire(request(a))).rejects.toMatchObject({ code: 'shutting_down' });
  });
});
