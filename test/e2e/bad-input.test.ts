import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { modelToQueueName, redisKeys } from '@switchyard/protocol';
import { readSse } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';

const MODEL = 'qwen2.5:0.5b';

describe('bad input gets a 4xx naming the problem, and nothing half-written', () => {
  let stack: Stack;
  let redis: Redis;
  let queue: Queue;
  beforeAll(async () => {
    stack = await startStack({ api: { bodyLimitBytes: 64 * 1024 } });
    redis = new Redis(stack.redisUrl);
    queue = new Queue(modelToQueueName(MODEL), { connection: redis.duplicate(), prefix: redisKeys(stack.prefix).bullPrefix });
  });
  afterAll(async () => {
    await queue?.close();
    redis?.disconnect();
    await stack?.close();
  });

  async function post(body: string, contentType = 'application/json') {
    const response = await fetch(`${stack.apiUrl}/v1/jobs`, { method: 'POST', headers: { 'Content-Type': contentType }, body });
    const text = await response.text();
    return { status: response.status, json: JSON.parse(text) as { error: { code: string; message: string } } };
  }

  /**
   * What a submit writes for a job: its keys (index record, event log, sequence), its
   * admission reservation, and jobs on the model's queue. Not every key under the prefix:
   * agents and admission write fleet state (heartbeats, seen models) in the background.
   */
  async function jobKeysCount(): Promise<number> {
    const keys = redisKeys(stack.prefix);
    const [jobKeys, reservations] = await Promise.all([redis.keys(`${stack.prefix}:job:*`), redis.hlen(keys.admission.jobs)]);
    const counts = await queue.getJobCounts();
    return jobKeys.length + reservations + Object.values(counts).reduce((sum, n) => sum + n, 0);
  }

  it.each([
    ['malformed JSON', '{"model": "x",', 400, 'invalid_json', /JSON/],
    ['an empty body', '', 400, 'invalid_json', /empty/],
    ['a JSON array', '[]', 400, 'invalid_request', /JSON object/],
    ['missing model', JSON.stringify({ prompt: 'x' }), 400, 'invalid_request', /model/],
    ['empty messages', JSON.stringify({ model: MODEL, messages: [] }), 400, 'invalid_request', /messages must not be empty/],
    ['neither prompt nor messages', JSON.stringify({ model: MODEL }), 400, 'invalid_request', /exactly one of messages or prompt/],
    ['a prompt of the wrong type', JSON.stringify({ model: MODEL, prompt: 42 }), 400, 'invalid_request', /prompt/],
    ['an option of the wrong type', JSON.stringify({ model: MODEL, prompt: 'x', options: { temperature: 'hot' } }), 400, 'invalid_request', /options\.temperature/],
    ['an unknown field', JSON.stringify({ model: MODEL, promt: 'typo' }), 400, 'invalid_request', /unknown field\(s\) "promt"/],
    ['a bad role', JSON.stringify({ model: MODEL, messages: [{ role: 'robot', content: 'x' }] }), 400, 'invalid_request', /messages\.0\.role/],
    ['an oversized body', JSON.stringify({ model: MODEL, prompt: 'x'.repeat(100 * 1024) }), 413, 'body_too_large', /limit/],
  ])('%s', async (_label, body, status, code, message) => {
    const keysBefore = await jobKeysCount();
    const result = await post(body);
    expect(result.status).toBe(status);
    expect(result.json.error.code).toBe(code);
    expect(result.json.error.message).toMatch(message);
    expect(await jobKeysCount()).toBe(keysBefore);
  });

  it('refuses a body that is not JSON', async () => {
    const result = await post('model=x', 'application/x-www-form-urlencoded');
    expect(result.status).toBe(415);
    expect(result.json.error.code).toBe('unsupported_media_type');
  });

  it('answers 404 with JSON for unknown jobs and routes', async () => {
    for (const path of ['/v1/jobs/doesnotexist', '/v1/jobs/doesnotexist/events', '/v1/jobs/bad:id', '/v1/nothing']) {
      const response = await fetch(`${stack.apiUrl}${path}`);
      expect(response.status, path).toBe(404);
      const json = (await response.json()) as any;
      expect(json.error.code).toMatch(/not_found/);
    }
    const del = await fetch(`${stack.apiUrl}/v1/jobs/doesnotexist`, { method: 'DELETE' });
    expect(del.status).toBe(404);
  });

  it('refuses a bad Last-Event-ID', async () => {
    const submitted = await post(JSON.stringify({ model: MODEL, prompt: 'x', options: { num_predict: 2 } }));
    expect(submitted.status).toBe(202);
    const id = (submitted.json as any).id;
    for (const bad of ['abc', '-1', '1.5', '99999999999999999999']) {
      const response = await fetch(`${stack.apiUrl}/v1/jobs/${id}/events`, { headers: { 'Last-Event-ID': bad } });
      expect(response.status, bad).toBe(400);
      expect(((await response.json()) as any).error.message).toMatch(/Last-Event-ID/);
    }
  });

  it('fails a job whose data is invalid on the agent, and the agent keeps serving', async () => {
    // Someone (an old API version, a hand-written script) put garbage on a model queue.
    const queue = new Queue(modelToQueueName(MODEL), { connection: redis.duplicate(), prefix: redisKeys(stack.prefix).bullPrefix });
    const bad = await queue.add('generate', { id: 'x', model: MODEL, tenant: 'default', request: { prompt: 7 } }, { jobId: 'garbage-job' });
    await expect.poll(async () => await bad.getState(), { timeout: 10_000 }).toBe('failed');
    const failed = await queue.getJob('garbage-job');
    expect(failed!.failedReason).toMatch(/^invalid_job: job data is invalid: .*request/);
    await queue.close();

    const submitted = await post(JSON.stringify({ model: MODEL, prompt: 'still alive?', options: { num_predict: 3 } }));
    expect(submitted.status).toBe(202);
    const sse = await readSse(`${stack.apiUrl}${(submitted.json as any).links.events}`);
    expect(sse.events.at(-1)!.type).toBe('done');
  });
});
