import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StreamEvent } from '@switchyard/protocol';
import { readSse } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';
import { KEYS, MODEL, REAL_TIME_SIM, accepted, call, simStats, sleep, startOrder, waitFor, writeKeysFile, type Who } from './backpressure-support.js';

/** Tokens at the model's 220 per second, in real time: `ms` of work. */
const work = (ms: number) => Math.round((ms / 1000) * 220);
const job = (ms: number, extra: Record<string, unknown> = {}) => ({ model: MODEL, prompt: `work ${ms}`, options: { num_predict: work(ms) }, ...extra });

describe('in the queue: deadlines, priorities with aging, fair share, position updates', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      // One slot: the order in which jobs start is the queue's order.
      nodes: [{ sim: REAL_TIME_SIM, agent: { slots: 1 } }],
      api: { apiKeysFile: writeKeysFile(), batchPriorityOffsetSeconds: 2, fairShareStepSeconds: 1 },
    });
  });
  afterAll(() => stack?.close());

  /**
   * Occupies the only slot with a job held in the simulator until `release()` (or a DELETE,
   * or the test's end); released, it runs `ms` more of work. A blocker that is merely long
   * could end before the test has queued everything behind it on a loaded machine.
   */
  let blockers = 0;
  async function holdSlot(ms: number): Promise<{ id: string; release: () => void }> {
    const prompt = `blocker ${++blockers}`;
    const hold = stack.hold({ prompt, afterTokens: 1 });
    const blocker = await accepted(stack, { model: MODEL, prompt, options: { num_predict: work(ms) } }, 'c');
    await waitFor(stack, blocker.id, 'running', 'c');
    return { id: blocker.id, release: () => hold.release() };
  }

  it('expires a job whose deadline passes in the queue: error deadline_exceeded, status expired, no GPU work', async () => {
    const tokensBefore = (await simStats(stack)).tokens_generated_total;
    const blocker = await holdSlot(100);
    // Another model, so its estimate is only a load (no drain measured): admitted, then stuck behind the blocker.
    const late = await accepted(stack, { model: 'llama3.2:3b', prompt: 'too late', deadline_ms: 2_500 }, 'a');
    const sse = await readSse(`${stack.apiUrl}${late.links.events}?key=${KEYS.a}`, { timeoutMs: 10_000 });
    expect(sse.events[0]).toMatchObject({ type: 'queued', position: 0 });
    expect(sse.events.at(-1)).toMatchObject({ type: 'error', code: 'deadline_exceeded' });
    expect(sse.events.map((event) => event.type)).not.toContain('started');
    const record = (await call(stack, `/v1/jobs/${late.id}`, { who: 'a' })).json;
    expect(record).toMatchObject({ status: 'expired', error: { code: 'deadline_exceeded' } });
    expect(record.error.message).toMatch(/queued/);

    blocker.release();
    await waitFor(stack, blocker.id, 'completed', 'c');
    const blockerTokens = (await call(stack, `/v1/jobs/${blocker.id}`, { who: 'c' })).json.usage.completion_tokens;
    expect((await simStats(stack)).tokens_generated_total - tokensBefore).toBe(blockerTokens);
    const metrics = await call(stack, '/metrics', { who: 'admin' });
    expect(metrics.json).toMatch(/switchyard_jobs_expired_total\{model="llama3\.2:3b"\} 1/);
  });

  it('runs interactive before batch, but ages batch: batch goes before interactive work that arrived later than the offset', async () => {
    const blocker = await holdSlot(20);
    const batch = await accepted(stack, job(20, { priority: 'batch' }), 'a');
    const early = await accepted(stack, job(20), 'b');
    // Aging is wall-clock time in the API: this wait is the subject, not a guess. A slower
    // machine only waits longer, which keeps `later` behind the aged batch job.
    await sleep(2_300); // past the 2 s batch offset
    const later = await accepted(stack, job(20), 'd');
    await call(stack, `/v1/jobs/${blocker.id}`, { method: 'DELETE', who: 'c' });
    const ids: Array<{ id: string; who: Who }> = [
      { id: batch.id, who: 'a' },
      { id: early.id, who: 'b' },
      { id: later.id, who: 'd' },
    ];
    for (const { id, who } of ids) await waitFor(stack, id, 'completed', who);
    expect(await startOrder(stack, ids)).toEqual([early.id, batch.id, later.id]);
  });

  it('shares one model queue fairly: a second tenant does not wait behind all of the first tenant’s jobs', async () => {
    const blocker = await holdSlot(20);
    const a: string[] = [];
    for (let i = 0; i < 5; i++) a.push((await accepted(stack, job(20), 'a')).id);
    const b: string[] = [];
    for (let i = 0; i < 2; i++) b.push((await accepted(stack, job(20), 'b')).id);
    await call(stack, `/v1/jobs/${blocker.id}`, { method: 'DELETE', who: 'c' });
    const ids = [...a.map((id) => ({ id, who: 'a' as Who })), ...b.map((id) => ({ id, who: 'b' as Who }))];
    for (const { id, who } of ids) await waitFor(stack, id, 'completed', who);
    // Tenant a's k-th concurrent job ranks k fair-share steps later, so b's interleave with a's
    // (plain FIFO would start b's two jobs last).
    expect(await startOrder(stack, ids)).toEqual([a[0], b[0], a[1], b[1], a[2], a[3], a[4]]);
  });

  it('reports position and ETA: in the 202, in GET, and as queued updates on the stream at most about once a second', async () => {
    // A measured drain rate to estimate from.
    for (let i = 0; i < 2; i++) await waitFor(stack, (await accepted(stack, job(20), 'c')).id, 'completed', 'c');
    const blocker = await holdSlot(500);
    // Three tenants with nothing else in flight, then one with a job ahead already: 3 ahead of it.
    for (const who of ['b', 'd', 'a'] as const) await accepted(stack, job(500), who);
    const watched = await accepted(stack, job(20), 'a');
    expect(watched.queue).toMatchObject({ position: 3, depth: 4 });
    expect(watched.queue.eta_s).toBeGreaterThan(0);
    const record = (await call(stack, `/v1/jobs/${watched.id}`, { who: 'a' })).json;
    expect(record).toMatchObject({ status: 'queued', queue_position: 3, queue_eta_s: expect.any(Number) });

    // The queue moves from here: the blocker's last 500 ms, then the three jobs ahead.
    blocker.release();
    const arrivals: Array<{ at: number; event: StreamEvent }> = [];
    const sse = await readSse(`${stack.apiUrl}${watched.links.events}?key=${KEYS.a}`, {
      timeoutMs: 15_000,
      stopAfter: (event) => {
        arrivals.push({ at: Date.now(), event });
        return event.type === 'done';
      },
    });
    expect(sse.events.map((event) => event.seq)).toEqual(sse.events.map((_, index) => index + 1));
    const queued = arrivals.filter(({ event }) => event.type === 'queued');
    expect(queued.length).toBeGreaterThanOrEqual(2);
    const positions = queued.map(({ event }) => (event.type === 'queued' ? event.position : -1));
    expect(positions[0]).toBe(3);
    expect(positions).toEqual([...positions].sort((x, y) => y - x)); // never moves back
    expect(positions.at(-1)).toBeLessThan(3);
    // The first event is the one written at submission; the updates after it are paced to
    // at most one a second (counted over the time spent queued, so a busy test machine that
    // delivers them in bunches does not matter).
    const queuedFor = (arrivals.find(({ event }) => event.type === 'started')!.at - arrivals[0]!.at) / 1000;
    expect(queued.length - 1).toBeLessThanOrEqual(Math.ceil(queuedFor) + 2);
    expect(queued.slice(1).every(({ event }) => event.type === 'queued' && typeof event.eta_s === 'number')).toBe(true);
    const types = sse.events.map((event) => event.type);
    expect(types.lastIndexOf('queued')).toBeLessThan(types.indexOf('started'));
    await waitFor(stack, blocker.id, 'completed', 'c');
  });
});
