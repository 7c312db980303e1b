import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createApi, parseConfig, type Api } from '@switchyard/api';
import { SAMPLE_CATALOG } from '@switchyard/gpu-sim';
import { startStack, type Stack } from '../support/stack.js';
import { KEYS, MODEL, REAL_TIME_SIM, accepted, call, post, waitFor, writeKeysFile, type Answer, type Who } from './backpressure-support.js';

const catalog = (name: string) => SAMPLE_CATALOG.filter((model) => model.name === name);
/** Long enough to hold the only slot while a test submits (about 2.7 s at the model's 220 tokens/s). */
const BLOCKER = { model: MODEL, prompt: 'hold the slot', options: { num_predict: 600 } };
const TINY = { model: MODEL, prompt: 'tiny', options: { num_predict: 1 } };

/** A 429/503 refusal as documented: code, Retry-After (whole seconds ≥ 1) in header and body, exact ms, queue depth. */
function expectRefusal(answer: Answer, status: number, code: string): void {
  expect(answer.status, JSON.stringify(answer.json)).toBe(status);
  expect(answer.json.error.code).toBe(code);
  expect(answer.json.error.message).toEqual(expect.any(String));
  const retryAfter = Number(answer.headers.get('retry-after'));
  expect(Number.isInteger(retryAfter) && retryAfter >= 1).toBe(true);
  expect(answer.json.error.retry_after_s).toBe(retryAfter);
  const ms = Number(answer.headers.get('retry-after-ms'));
  expect(ms).toBeGreaterThan(0);
  expect(Math.ceil(ms / 1000)).toBeLessThanOrEqual(retryAfter);
}

describe('admission: keys, tenants, limits and every refusal', () => {
  let stack: Stack;
  let replica: Api;
  let replicaUrl: string;

  beforeAll(async () => {
    const apiKeysFile = writeKeysFile({ b: { in_flight: 3 }, c: { model_in_flight: 2 } });
    stack = await startStack({
      nodes: [
        // One slot, real-time tokens: a long job holds it while the test submits.
        { sim: { ...REAL_TIME_SIM, models: catalog(MODEL) }, agent: { slots: 1 } },
        { sim: { models: catalog('llama3.2:3b') } },
      ],
      // FIFO within the queue here (no fair-share steps) so positions are easy to predict.
      api: { apiKeysFile, fairShareStepSeconds: 0 },
    });
    // A second API replica on the same Redis: limits must hold across replicas.
    replica = await createApi(
      parseConfig({ redisUrl: stack.redisUrl, redisPrefix: stack.prefix, host: '127.0.0.1', port: 0, fleetCacheMs: 50, apiKeysFile, fairShareStepSeconds: 0 }),
      { logger: pino({ level: 'silent' }) },
    );
    replicaUrl = await replica.listen();
  });
  afterAll(async () => {
    await replica?.close();
    await stack?.close();
  });

  const setLimits = (limits: Record<string, number | null>) => call(stack, '/admin/limits', { method: 'PUT', who: 'admin', body: limits });
  const cancel = (id: string, who: Who) => call(stack, `/v1/jobs/${id}`, { method: 'DELETE', who });
  async function holdSlot(): Promise<string> {
    // Held on the simulator until cancelled: the slot stays taken however slow the machine.
    stack.hold({ prompt: 'hold the slot', afterTokens: 1 });
    const blocker = await accepted(stack, BLOCKER, 'd');
    await waitFor(stack, blocker.id, 'running', 'd');
    return blocker.id;
  }
  async function burst(count: number, who: (i: number) => Who): Promise<Array<Answer & { who: Who }>> {
    return Promise.all(Array.from({ length: count }, async (_, i) => ({ ...(await post(i % 2 === 0 ? stack.apiUrl : replicaUrl, TINY, who(i))), who: who(i) })));
  }
  async function cancelAll(answers: Array<Answer & { who: Who }>): Promise<void> {
    await Promise.all(answers.filter((a) => a.status === 202).map((a) => cancel(a.json.id, a.who)));
  }

  it('needs a key (401) before anything else, then checks the schema (400), and shows a tenant only its own jobs (404)', async () => {
    const missing = await post(stack, TINY, 'nobody');
    expect(missing.status).toBe(401);
    expect(missing.json.error.code).toBe('unauthorized');
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await call(stack, '/v1/jobs', { body: TINY, headers: { 'X-API-Key': 'not-a-key-of-anyone-here' } });
    expect(wrong.status).toBe(401);
    expect((await post(stack, { model: MODEL, promt: 'typo' }, 'nobody')).status).toBe(401);
    const badSchema = await post(stack, { model: MODEL, promt: 'typo' }, 'a');
    expect(badSchema.status).toBe(400);
    expect(badSchema.json.error.message).toContain('promt');

    const job = await accepted(stack, TINY, 'a');
    expect((await call(stack, `/v1/jobs/${job.id}`, { who: 'a' })).status).toBe(200);
    for (const [method, path] of [
      ['GET', `/v1/jobs/${job.id}`],
      ['DELETE', `/v1/jobs/${job.id}`],
      ['GET', `/v1/jobs/${job.id}/events`],
    ] as const) {
      const other = await call(stack, path, { method, who: 'b' });
      expect(other.status, `${method} ${path}`).toBe(404);
      expect(other.json.error.code).toBe('job_not_found');
    }
    // EventSource cannot send headers: ?key= works on GET.
    const viaQuery = await fetch(`${stack.apiUrl}/v1/jobs/${job.id}?key=${KEYS.a}`);
    expect(viaQuery.status).toBe(200);

    const models = await call(stack, '/v1/models', { who: 'a' });
    expect(models.status).toBe(200);
    const qwen = models.json.data.find((entry: any) => entry.id === MODEL);
    expect(qwen.queue).toEqual(expect.objectContaining({ oldest_wait_s: expect.any(Number), drain_rate_per_s: expect.any(Number) }));
  });

  it('unlocks fleet endpoints, /metrics, limits and Bull Board only for an admin key (cookie or ?key= for the board)', async () => {
    for (const path of ['/v1/agents', '/metrics', '/admin/limits', '/admin/queues']) {
      expect((await call(stack, path, { who: 'nobody' })).status, path).toBe(401);
      const tenant = await call(stack, path, { who: 'a' });
      expect(tenant.status, path).toBe(403);
      expect(tenant.json.error.code).toBe('forbidden');
      expect((await call(stack, path, { who: 'admin' })).status, path).toBe(200);
    }
    // ?key= is traded for an opaque session cookie, and the browser sent back without the key.
    const page = await fetch(`${stack.apiUrl}/admin/queues?key=${KEYS.admin}`, { redirect: 'manual' });
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/admin/queues');
    const cookie = page.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    expect(cookie).toMatch(/Path=\/admin;/);
    expect(cookie).not.toContain(KEYS.admin);
    const api = await fetch(`${stack.apiUrl}/admin/queues/api/queues?activeQueue=&page=1&jobsPerPage=10`, { headers: { Cookie: cookie.split(';')[0]! } });
    expect(api.status).toBe(200);
    expect((await fetch(`${stack.apiUrl}/admin/queues/api/queues`)).status).toBe(401);
  });

  it('holds a per-model queue depth limit exactly under concurrent submits to two replicas (queue_full 429)', async () => {
    const blocker = await holdSlot();
    await setLimits({ [`queue_depth:${MODEL}`]: 4 });
    const answers = await burst(16, (i) => (i % 3 === 0 ? 'd' : 'a'));
    expect(answers.filter((a) => a.status === 202)).toHaveLength(4);
    const refused = answers.filter((a) => a.status !== 202);
    expect(refused).toHaveLength(12);
    for (const answer of refused) {
      expectRefusal(answer, 429, 'queue_full');
      expect(answer.headers.get('x-queue-depth')).toBe('4');
    }
    await cancelAll(answers);
    await cancel(blocker, 'd');
    await setLimits({ [`queue_depth:${MODEL}`]: null });
  });

  it('holds per-tenant limits from the keys file exactly under concurrent submits (tenant_limit, tenant_model_limit)', async () => {
    const blocker = await holdSlot();
    const b = await burst(10, () => 'b'); // b: in_flight 3
    expect(b.filter((a) => a.status === 202)).toHaveLength(3);
    for (const answer of b.filter((a) => a.status !== 202)) expectRefusal(answer, 429, 'tenant_limit');
    const c = await burst(6, () => 'c'); // c: model_in_flight 2
    expect(c.filter((a) => a.status === 202)).toHaveLength(2);
    for (const answer of c.filter((a) => a.status !== 202)) expectRefusal(answer, 429, 'tenant_model_limit');
    const limits = await call(stack, '/admin/limits', { who: 'admin' });
    expect(limits.json.in_flight).toMatchObject({ 't:b': 3, 't:c': 2 });
    await cancelAll([...b, ...c]);
    await cancel(blocker, 'd');
    await expect.poll(async () => (await call(stack, '/admin/limits', { who: 'admin' })).json.in_flight['t:b'] ?? 0).toBe(0);
  });

  it('applies a limit changed at run time to the next submit (global_limit), and lifts it again', async () => {
    const changed = await setLimits({ global_in_flight: 0 });
    expect(changed.json.overrides).toMatchObject({ global_in_flight: 0 });
    expectRefusal(await post(stack, TINY, 'a'), 429, 'global_limit');
    expectRefusal(await post(replicaUrl, TINY, 'a'), 429, 'global_limit');
    expect((await setLimits({ nonsense: 1 })).status).toBe(400);
    await setLimits({ global_in_flight: null });
    const job = await accepted(replicaUrl, TINY, 'a');
    await waitFor(stack, job.id, 'completed');
  });

  it('refuses up front a deadline the measured drain cannot meet (deadline_ms or X-Timeout-Ms), admits one it can', async () => {
    // A drain rate to estimate from: a few short jobs completed.
    for (let i = 0; i < 3; i++) {
      const job = await accepted(stack, { model: MODEL, prompt: `warm ${i}`, options: { num_predict: 40 } }, 'a');
      await waitFor(stack, job.id, 'completed');
    }
    const blocker = await holdSlot();
    const queued = [];
    for (let i = 0; i < 3; i++) queued.push(await accepted(stack, { model: MODEL, prompt: `ahead ${i}`, options: { num_predict: 40 } }, 'a'));
    const late = await post(stack, { ...TINY, deadline_ms: 200 }, 'd');
    expectRefusal(late, 429, 'deadline_unreachable');
    expect(late.json.error.message).toMatch(/estimated wait/);
    expectRefusal(await post(stack, TINY, 'd', { 'X-Timeout-Ms': '200' }), 429, 'deadline_unreachable');
    expect((await post(stack, TINY, 'd', { 'X-Timeout-Ms': 'soon' })).status).toBe(400);
    const fine = await post(stack, { ...TINY, deadline_ms: 120_000 }, 'd');
    expect(fine.status).toBe(202);
    expect(fine.json.queue).toMatchObject({ position: 3, depth: 4, eta_s: expect.any(Number) });
    await Promise.all([...queued.map((job) => cancel(job.id, 'a')), cancel(fine.json.id, 'd'), cancel(blocker, 'd')]);
  });

  it('answers a repeated idempotency key with the first job (200), even when limits would refuse new work', async () => {
    const first = await post(stack, { ...TINY, idempotency_key: 'order-42' }, 'a');
    expect(first.status).toBe(202);
    await setLimits({ global_in_flight: 0 });
    const again = await post(replicaUrl, { ...TINY, idempotency_key: 'order-42' }, 'a');
    expect(again.status).toBe(200);
    expect(again.json.id).toBe(first.json.id);
    await setLimits({ global_in_flight: null });
    const otherTenant = await post(stack, { ...TINY, idempotency_key: 'order-42' }, 'b');
    expect(otherTenant.status).toBe(202);
    expect(otherTenant.json.id).not.toBe(first.json.id);
    // The same new key, at once on both replicas: one job, created once.
    const racing = await Promise.all(Array.from({ length: 6 }, (_, i) => post(i % 2 ? replicaUrl : stack.apiUrl, { ...TINY, idempotency_key: 'race-7' }, 'c')));
    expect(new Set(racing.map((answer) => answer.json.id)).size).toBe(1);
    expect(racing.map((answer) => answer.status).sort()).toEqual([200, 200, 200, 200, 200, 202]);
  });

  it('says model_not_found (404) for a model no agent has, no_capacity (503, Retry-After) for one whose agents are gone', async () => {
    const unknown = await post(stack, { model: 'nosuch:1b', prompt: 'x' }, 'a');
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe('model_not_found');
    expect((await accepted(stack, { model: 'llama3.2:3b', prompt: 'x', options: { num_predict: 1 } }, 'a')).id).toBeTruthy();
    // The only agent with llama3.2 leaves: the model is known to come back, so 503 and a time to retry.
    await stack.agents[1]!.close();
    await expect.poll(async () => (await post(stack, { model: 'llama3.2:3b', prompt: 'x' }, 'a')).status, { timeout: 5_000 }).toBe(503);
    const gone = await post(stack, { model: 'llama3.2:3b', prompt: 'x' }, 'a');
    expectRefusal(gone, 503, 'no_capacity');
    expect(gone.json.error.retry_after_s).toBeGreaterThanOrEqual(5);

    const metrics = await call(stack, '/metrics', { who: 'admin' });
    for (const reason of ['queue_full', 'tenant_limit', 'tenant_model_limit', 'global_limit', 'deadline_unreachable', 'no_capacity', 'model_not_found']) {
      expect(metrics.json).toMatch(new RegExp(`switchyard_jobs_refused_total\\{[^}]*reason="${reason}"`));
    }
  });
});
