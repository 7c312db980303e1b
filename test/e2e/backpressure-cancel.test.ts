import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createApi, parseConfig, type Api } from '@switchyard/api';
import { readSse, textOf } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';
import { KEYS, MODEL, REAL_TIME_SIM, accepted, call, simStats, sleep, status, waitFor, writeKeysFile } from './backpressure-support.js';

/**
 * The disconnect grace is wall-clock time inside the API, which has no clock a test can
 * drive; it is long enough that a client coming back after GRACE_MS / 4 (three of the API's
 * 250 ms maintenance passes) is never late, even on a loaded machine.
 */
const GRACE_MS = 3_000;
/** `seconds` of real-time generation at the model's 220 tokens per second. */
const long = (seconds: number, extra: Record<string, unknown> = {}) => ({
  model: MODEL,
  prompt: `run for ${seconds} s`,
  options: { num_predict: Math.round(seconds * 220) },
  ...extra,
});
/**
 * A job the test acts on while it runs: held in the simulator (stack.hold) after its first
 * token, so "running" is a fact when the test acts, not a bet on the job's length.
 */
const held = (name: string, extra: Record<string, unknown> = {}) => ({ model: MODEL, prompt: `held: ${name}`, options: { num_predict: 4_400 }, ...extra });

describe('cancellation: DELETE, and the disconnect grace of native streams', () => {
  let stack: Stack;
  let replica: Api;
  let replicaUrl: string;
  beforeAll(async () => {
    const apiKeysFile = writeKeysFile();
    stack = await startStack({
      nodes: [{ sim: REAL_TIME_SIM, agent: { slots: 4 } }],
      // A DELETE waits up to 10 s for the agent's confirmation (2 s by default; a loaded test machine can be slower).
      api: { apiKeysFile, disconnectGraceMs: GRACE_MS, cancelWaitMs: 10_000 },
    });
    // A second replica: a client may come back through another one.
    replica = await createApi(
      parseConfig({ redisUrl: stack.redisUrl, redisPrefix: stack.prefix, host: '127.0.0.1', port: 0, fleetCacheMs: 50, apiKeysFile, disconnectGraceMs: GRACE_MS }),
      { logger: pino({ level: 'silent' }) },
    );
    replicaUrl = await replica.listen();
  });
  afterAll(async () => {
    await replica?.close();
    await stack?.close();
  });

  const events = (id: string, base = stack.apiUrl) => `${base}/v1/jobs/${id}/events?key=${KEYS.a}`;
  const remove = (id: string) => call(stack, `/v1/jobs/${id}`, { method: 'DELETE', who: 'a' });

  it('cancels a running job (the simulator sees the request go and stops) and a queued one (it never reaches the GPU)', async () => {
    const before = await simStats(stack);
    stack.hold({ prompt: 'held: ', afterTokens: 1 });
    const running = await Promise.all(Array.from({ length: 4 }, (_, i) => accepted(stack, held(`slot ${i}`), 'a')));
    for (const job of running) await waitFor(stack, job.id, 'running');
    const queued = await accepted(stack, long(1), 'a');
    expect(await status(stack, queued.id)).toBe('queued');
    const requests = (await simStats(stack)).requests_total;

    const cancelledQueued = await remove(queued.id);
    expect(cancelledQueued.status).toBe(200);
    expect(cancelledQueued.json.status).toBe('cancelled');
    const cancelledRunning = await remove(running[0].id);
    expect(cancelledRunning.status).toBe(200);
    expect(cancelledRunning.json).toMatchObject({ status: 'cancelled', error: { code: 'cancelled' } });
    expect((await remove(running[0].id)).status).toBe(409);

    await expect.poll(async () => (await simStats(stack)).cancelled_total, { timeout: 5_000 }).toBe(before.cancelled_total + 1);
    const sse = await readSse(events(queued.id));
    expect(sse.events.map((event) => event.type)).toEqual(['queued', 'error']);
    for (const job of running.slice(1)) await remove(job.id);
    expect((await simStats(stack)).requests_total).toBe(requests);
  });

  it('keeps a job whose client comes back within the grace period (through another replica), with no gap', async () => {
    // Held after a few tokens, the job is still running when its client comes back.
    const hold = stack.hold({ prompt: 'come back', afterTokens: 5 });
    const job = await accepted(stack, { model: MODEL, prompt: 'come back', options: { num_predict: 110 } }, 'a');
    await hold.reached();
    const first = await readSse(events(job.id), { stopAfter: (event) => event.type === 'token' });
    await sleep(GRACE_MS / 4);
    expect(await status(stack, job.id)).toBe('running');
    hold.release();
    const rest = await readSse(events(job.id, replicaUrl), { lastEventId: String(first.events.at(-1)!.seq), timeoutMs: 10_000 });
    const all = [...first.events, ...rest.events];
    expect(all.map((event) => event.seq)).toEqual(all.map((_, index) => index + 1));
    expect(all.at(-1)!.type).toBe('done');
    const record = (await call(stack, `/v1/jobs/${job.id}`, { who: 'a' })).json;
    expect(record.status).toBe('completed');
    expect(textOf(all)).toBe(record.result.text);
  });

  it('cancels an abandoned stream after the grace period, never a detached or a never-streamed job', async () => {
    const before = await simStats(stack);
    stack.hold({ prompt: 'held: ', afterTokens: 1 });
    const abandoned = await accepted(stack, held('abandoned'), 'a');
    const detached = await accepted(stack, held('detached', { detach: true }), 'a');
    const polled = await accepted(stack, held('polled'), 'a');
    const firstToken = (event: { type: string }) => event.type === 'token';
    // When the abandoned stream itself ended, taken as its read returns: the API marks the
    // stream's end after the client closed it, so the grace runs from no earlier than this.
    let left = 0;
    await Promise.all([readSse(events(abandoned.id), { stopAfter: firstToken }).then(() => (left = Date.now())), readSse(events(detached.id), { stopAfter: firstToken })]);
    await waitFor(stack, polled.id, 'running');

    await waitFor(stack, abandoned.id, 'cancelled', 'a', GRACE_MS + 4_000);
    expect(Date.now() - left).toBeGreaterThanOrEqual(GRACE_MS - 100);
    await expect.poll(async () => (await simStats(stack)).cancelled_total, { timeout: 5_000 }).toBe(before.cancelled_total + 1);
    const record = (await call(stack, `/v1/jobs/${abandoned.id}`, { who: 'a' })).json;
    expect(record.error).toMatchObject({ code: 'cancelled' });

    await sleep(Math.max(0, left + GRACE_MS + 1_000 - Date.now()));
    expect(await status(stack, detached.id)).toBe('running');
    expect(await status(stack, polled.id)).toBe('running');
    // Counted by the replica that ran the maintenance (either one).
    const counted = await Promise.all(
      [stack.apiUrl, replicaUrl].map(async (base) => {
        const text: string = (await call(base, '/metrics', { who: 'admin' })).json;
        return Number(/switchyard_jobs_cancelled_total\{[^}]*cause="disconnect"[^}]*\} (\d+)/.exec(text)?.[1] ?? 0);
      }),
    );
    expect(counted[0]! + counted[1]!).toBe(1);
    await Promise.all([remove(detached.id), remove(polled.id)]);
  });
});
