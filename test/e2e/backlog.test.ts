/**
 * The backlog an autoscaler reads (`GET /v1/backlog`, `GET /v1/models/:id/backlog`,
 * `switchyard_backlog`) and scale from zero, on the real stack: real Redis, gpu-sim over HTTP,
 * agents, the API over HTTP.
 *
 * - With an agent: a held job (claimed, no first token yet: `loading`) and jobs queued behind
 *   it (BullMQ's prioritized set, where every Switchyard job waits), plus a job in BullMQ's
 *   plain wait list and one delayed, put there with BullMQ itself, are all counted.
 * - Without one: a model in the fleet catalog answers `503 no_capacity` with Retry-After (not
 *   404) and the refused submit counts in the backlog (`unserved`) once however often it is
 *   retried; a model outside the catalog is a 404 and counts nowhere. Once an agent with the
 *   model comes (the pool woke), the retried submit is accepted and `unserved` is gone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { modelToQueueName, redisKeys } from '@switchyard/protocol';
import { SAMPLE_CATALOG, createGpuSim } from '@switchyard/gpu-sim';
import { postJob, submitJob, until } from '../support/client.js';
import { FAST_SIM, startStack, type Stack } from '../support/stack.js';

const MODEL = 'qwen2.5:0.5b';
/** The model of a GPU pool scaled to zero: in the catalog, on no running node. */
const COLD = 'llama3.2:3b';

let stack: Stack | undefined;
afterEach(async () => {
  await stack?.close();
  stack = undefined;
});

async function get(path: string): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(`${stack!.apiUrl}${path}`);
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: response.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text };
}

async function put(path: string, body: unknown): Promise<number> {
  const response = await fetch(`${stack!.apiUrl}${path}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  await response.body?.cancel();
  return response.status;
}

/** `switchyard_backlog{model}` on the API's /metrics; undefined when there is no such series. */
async function backlogSeries(model: string): Promise<number | undefined> {
  const { body } = await get('/metrics');
  const line = (body as string).split('\n').find((l) => l.startsWith(`switchyard_backlog{model="${model}"} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('backlog with agents', () => {
  it('counts waiting, prioritized, delayed and loading jobs per model and fleet-wide, in the endpoint and the series', async () => {
    stack = await startStack({ nodes: [{ sim: { models: SAMPLE_CATALOG.filter((m) => m.name === MODEL) }, agent: { slots: 1, backendParallel: 1 } }] });
    const hold = stack.hold();
    // The first is claimed and held before its first token (`loading`); two more wait behind it.
    await submitJob(stack, { model: MODEL, prompt: 'first', options: { num_predict: 3 } });
    await hold.reached(1);
    await submitJob(stack, { model: MODEL, prompt: 'second', options: { num_predict: 3 } });
    await submitJob(stack, { model: MODEL, prompt: 'third', options: { num_predict: 3 } });
    // BullMQ's other waiting structures, which Switchyard's own submits do not use: a job in
    // the plain wait list (no priority) and a delayed one (a retry's backoff).
    const redis = new Redis(stack.redisUrl);
    const queue = new Queue(modelToQueueName(MODEL), { connection: redis, prefix: redisKeys(stack.prefix).bullPrefix });
    try {
      await queue.add('by-hand', {}, { jobId: 'plain-wait' });
      await queue.add('by-hand', {}, { jobId: 'delayed-one', delay: 3_600_000 });

      const one = await until('the backlog of the model', async () => {
        const { body } = await get(`/v1/models/${MODEL}/backlog`);
        return body.loading === 1 && body.prioritized === 2 ? body : undefined;
      });
      expect(one).toEqual({
        object: 'model_backlog',
        model: MODEL,
        backlog: 5,
        waiting: 1,
        prioritized: 2,
        delayed: 1,
        loading: 1,
        unserved: 0,
        agents: 1,
        in_catalog: false,
      });
      // The same through the query form, the fleet-wide answer and the Prometheus series.
      expect((await get(`/v1/backlog?model=${encodeURIComponent(MODEL)}`)).body).toEqual(one);
      const fleet = (await get('/v1/backlog')).body;
      expect(fleet).toMatchObject({ object: 'backlog', backlog: 5, waiting: 1, prioritized: 2, delayed: 1, loading: 1, unserved: 0 });
      expect(fleet.models).toEqual([one]);
      expect(await backlogSeries(MODEL)).toBe(5);

      // The by-hand jobs go (the agent would fail them: they carry no request), the hold lets
      // the real ones finish: nothing is left waiting.
      await queue.remove('plain-wait');
      await queue.remove('delayed-one');
      hold.release();
      await until('an empty backlog', async () => ((await get(`/v1/models/${MODEL}/backlog`)).body.backlog === 0 ? true : undefined));
      expect(await backlogSeries(MODEL)).toBe(0);
    } finally {
      await queue.close();
      redis.disconnect();
    }
  });

  it('answers bad ids with a 400 and unknown models with a 404, as native errors', async () => {
    stack = await startStack({ nodes: [{ sim: { models: SAMPLE_CATALOG.filter((m) => m.name === MODEL) } }] });
    const unknown = await get('/v1/models/no-such-model:1b/backlog');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toMatchObject({ code: 'model_not_found' });
    expect(unknown.body.error.message).toMatch(/fleet catalog/);
    // An id with `/`, encoded, reaches this route (not the OpenAI wire's /v1/models/*) whole.
    const slashed = await get('/v1/models/hf.co%2Forg%2Frepo:Q4/backlog');
    expect(slashed.status).toBe(404);
    expect(slashed.body.error.message).toContain('"hf.co/org/repo:Q4"');
    const empty = await get('/v1/backlog?model=');
    expect(empty.status).toBe(400);
    expect(empty.body.error.code).toBe('invalid_request');
    const twice = await get(`/v1/backlog?model=a&model=b`);
    expect(twice.status).toBe(400);
    const long = await get(`/v1/backlog?model=${'x'.repeat(600)}`);
    expect(long.status).toBe(400);
    expect(long.body.error.message).toMatch(/at most 512/);
    // A model the fleet serves with nothing queued: zeros, not a 404.
    await until('the model served', async () => ((await get(`/v1/models/${MODEL}/backlog`)).status === 200 ? true : undefined));
    expect((await get(`/v1/models/${MODEL}/backlog`)).body).toMatchObject({ backlog: 0, agents: 1 });
  });

  it('is admin only when keys are configured', async () => {
    stack = await startStack({ api: { apiKeys: 'acme:tenant-key-0123456789', adminApiKeys: 'admin-key-0123456789' } });
    for (const path of ['/v1/backlog', `/v1/models/${MODEL}/backlog`]) {
      expect((await fetch(`${stack.apiUrl}${path}`)).status).toBe(401);
      expect((await fetch(`${stack.apiUrl}${path}`, { headers: { authorization: 'Bearer tenant-key-0123456789' } })).status).toBe(403);
      // KEDA's metrics-api scaler sends the key as a header (authMode apiKey: X-API-KEY by default).
      const answer = await fetch(`${stack.apiUrl}${path}`, { headers: { 'x-api-key': 'admin-key-0123456789' } });
      expect(answer.status).toBe(200);
    }
  });
});

describe('scale from zero', () => {
  it('a model in the catalog answers 503 no_capacity with Retry-After while no agent serves it, and the backlog counts the demand', async () => {
    // A running pool for MODEL; COLD's pool (label gpu=big) is scaled to zero.
    stack = await startStack({ nodes: [{ sim: { models: SAMPLE_CATALOG.filter((m) => m.name === MODEL) } }] });
    expect(await put(`/admin/models/${COLD}`, { on: { labels: { gpu: 'big' } } })).toBe(201);
    expect((await get(`/v1/models/${COLD}/backlog`)).body).toMatchObject({ backlog: 0, unserved: 0, agents: 0, in_catalog: true });

    await until('the live agent seen', async () => ((await get(`/v1/models/${MODEL}/backlog`)).body.agents === 1 ? true : undefined));
    const body = { model: COLD, prompt: 'wake up', options: { num_predict: 3 } };
    const refused = await postJob(stack, body);
    expect(refused.status).toBe(503);
    expect(refused.json.error).toMatchObject({ code: 'no_capacity' });
    expect(refused.json.error.message).toMatch(/fleet catalog/);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    // A retry of the same request is the same demand; another request is more.
    expect((await postJob(stack, body)).status).toBe(503);
    expect((await postJob(stack, { ...body, prompt: 'me too' })).status).toBe(503);
    expect((await get(`/v1/models/${COLD}/backlog`)).body).toMatchObject({ backlog: 2, unserved: 2, waiting: 0, prioritized: 0, agents: 0 });
    expect(await backlogSeries(COLD)).toBe(2);
    expect((await get('/v1/backlog')).body).toMatchObject({ backlog: 2, unserved: 2 });

    // Outside the catalog, with live agents: an unknown model, counted nowhere.
    const unknown = await postJob(stack, { model: 'no-such-model:1b', prompt: 'x' });
    expect(unknown.status).toBe(404);
    expect((await get('/v1/models/no-such-model:1b/backlog')).status).toBe(404);

    // The scaler woke the pool: a node with the model joins. The demand now waits in the
    // queue, where it is counted once; the retried submit is accepted.
    const sim = await createGpuSim({ ...FAST_SIM, models: SAMPLE_CATALOG.filter((m) => m.name === COLD) });
    stack.sims.push(sim);
    await stack.addAgent(stack.sims.length - 1, { labels: { gpu: 'big' } });
    const accepted = await until('the woken pool accepting the retry', async () => {
      const answer = await postJob(stack!, body);
      return answer.status === 202 ? answer : undefined;
    });
    expect(accepted.json).toMatchObject({ model: COLD, status: 'queued' });
    const after = (await get(`/v1/models/${COLD}/backlog`)).body;
    expect(after).toMatchObject({ unserved: 0, agents: 1 });
  });

  it('with no agent at all: 503 with Retry-After for every model; the catalog model counts in the backlog, an unknown one does not', async () => {
    stack = await startStack({ nodes: [], api: { retryAfterFallbackSeconds: 7 } });
    expect(await put(`/admin/models/${COLD}`, { copies: { min: 1 } })).toBe(201);
    const refused = await postJob(stack, { model: COLD, prompt: 'wake up' });
    expect(refused.status).toBe(503);
    expect(refused.json.error.code).toBe('no_capacity');
    expect(refused.headers.get('retry-after')).toBe('7');
    const other = await postJob(stack, { model: 'no-such-model:1b', prompt: 'x' });
    expect(other.status).toBe(503);

    const fleet = (await get('/v1/backlog')).body;
    expect(fleet).toMatchObject({ object: 'backlog', backlog: 1, unserved: 1 });
    expect(fleet.models).toEqual([expect.objectContaining({ model: COLD, backlog: 1, unserved: 1, agents: 0, in_catalog: true })]);
    expect(await backlogSeries(COLD)).toBe(1);
    expect(await backlogSeries('no-such-model:1b')).toBeUndefined();
  });

  it('refused demand stops counting after UNSERVED_DEMAND_SECONDS', async () => {
    stack = await startStack({ nodes: [], api: { unservedDemandSeconds: 1 } });
    expect(await put(`/admin/models/${COLD}`, {})).toBe(201);
    expect((await postJob(stack, { model: COLD, prompt: 'wake up' })).status).toBe(503);
    expect((await get(`/v1/models/${COLD}/backlog`)).body.unserved).toBe(1);
    // The window is wall-clock time in Redis scores; waiting it out is the only honest check.
    await until('the demand to lapse', async () => ((await get(`/v1/models/${COLD}/backlog`)).body.unserved === 0 ? true : undefined), 5_000);
  });
});
