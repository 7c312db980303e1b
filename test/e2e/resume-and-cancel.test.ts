import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeys } from '@switchyard/protocol';
import { EventLog } from '@switchyard/redis';
import { jobStatus, submitJob as submit } from '../support/client.js';
import { readSse, textOf } from '../support/sse.js';
import { startStack, type Stack } from '../support/stack.js';

const MODEL = 'qwen2.5:0.5b';

async function simStats(stack: Stack): Promise<any> {
  return fetch(`${stack.sims[0]!.url}/sim/stats`).then((r) => r.json());
}

describe('streams that outlive a connection, and cancellation', () => {
  let stack: Stack;
  beforeAll(async () => {
    // Real-time tokens (100/s) so a stream is still running when the test acts on it;
    // one slot so a second job has to wait in the queue.
    stack = await startStack({
      nodes: [{ sim: { time_scale: 1, tokens_per_s: 100, load_overhead_ms: 0, load_bytes_per_s: 1e12 }, agent: { slots: 1 } }],
    });
  });
  afterAll(() => stack?.close());

  it('resumes with Last-Event-ID with no gap and no duplicate', async () => {
    const body = { model: MODEL, prompt: 'tell me a long story', options: { seed: 11, num_predict: 60 } };
    const job = await submit(stack, body);
    const url = `${stack.apiUrl}${job.links.events}`;
    const first = await readSse(url, { stopAfter: (event) => event.type === 'token' && event.seq >= 5 });
    const lastSeen = first.events.at(-1)!;
    expect(lastSeen.type).toBe('token');

    const rest = await readSse(url, { lastEventId: String(lastSeen.seq) });
    expect(rest.status).toBe(200);
    expect(rest.events[0]!.seq).toBe(lastSeen.seq + 1);
    const all = [...first.events, ...rest.events];
    expect(all.map((event) => event.seq)).toEqual(all.map((_, index) => index + 1));
    expect(all.at(-1)!.type).toBe('done');

    // Reassembled text equals an uninterrupted read of the same job's log.
    const uninterrupted = await readSse(url);
    expect(textOf(all)).toBe(textOf(uninterrupted.events));
    const record = await fetch(`${stack.apiUrl}/v1/jobs/${job.id}`).then((r) => r.json() as Promise<any>);
    expect(textOf(all)).toBe(record.result.text);
  });

  it('cancels a running job: the simulator stops generating and the job ends cancelled', async () => {
    const before = await simStats(stack);
    const job = await submit(stack, { model: MODEL, prompt: 'go on forever', options: { num_predict: 2000 } });
    const url = `${stack.apiUrl}${job.links.events}`;
    const streamed = readSse(url);
    await expect.poll(() => jobStatus(stack, job.id), { timeout: 10_000 }).toBe('running');

    const cancel = await fetch(`${stack.apiUrl}/v1/jobs/${job.id}`, { method: 'DELETE' });
    expect(cancel.status).toBe(200);
    expect((await cancel.json() as any).status).toBe('cancelled');

    const sse = await streamed;
    const last = sse.events.at(-1)!;
    expect(last).toMatchObject({ type: 'error', code: 'cancelled' });
    const tokens = sse.events.filter((event) => event.type === 'token').length;
    expect(tokens).toBeLessThan(2000);

    await expect.poll(async () => (await simStats(stack)).active_requests, { timeout: 5_000 }).toBe(0);
    const after = await simStats(stack);
    expect(after.cancelled_total).toBe(before.cancelled_total + 1);
    const generated = after.tokens_generated_total;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await simStats(stack)).tokens_generated_total).toBe(generated);

    const record = await fetch(`${stack.apiUrl}/v1/jobs/${job.id}`).then((r) => r.json() as Promise<any>);
    expect(record.status).toBe('cancelled');
    expect(record.error.code).toBe('cancelled');
    // Cancelling again is a conflict, not a crash.
    expect((await fetch(`${stack.apiUrl}/v1/jobs/${job.id}`, { method: 'DELETE' })).status).toBe(409);
  });

  it('cancels a queued job without it ever reaching the GPU', async () => {
    const blocker = await submit(stack, { model: MODEL, prompt: 'occupy the only slot', options: { num_predict: 150 } });
    await expect.poll(() => jobStatus(stack, blocker.id), { timeout: 10_000 }).toBe('running');
    const requestsBefore = (await simStats(stack)).requests_total;
    const waiting = await submit(stack, { model: MODEL, prompt: 'never runs' });
    expect(await jobStatus(stack, waiting.id)).toBe('queued');

    const cancel = await fetch(`${stack.apiUrl}/v1/jobs/${waiting.id}`, { method: 'DELETE' });
    expect(cancel.status).toBe(200);
    const sse = await readSse(`${stack.apiUrl}${waiting.links.events}`);
    expect(sse.events.map((event) => event.type)).toEqual(['queued', 'error']);
    expect(sse.events.at(-1)).toMatchObject({ code: 'cancelled' });

    await readSse(`${stack.apiUrl}${blocker.links.events}`);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await simStats(stack)).requests_total).toBe(requestsBefore);
    expect(await jobStatus(stack, waiting.id)).toBe('cancelled');
  });
});

describe('a job that ended in its log but not yet in its queue', () => {
  let slowStack: Stack;
  beforeAll(async () => {
    // Everything 1000× slower than real (the model makes 220 tokens/s): a token every 4.5 s,
    // so the job is running and its log stays quiet while the test acts.
    slowStack = await startStack({ nodes: [{ sim: { time_scale: 1000, load_overhead_ms: 0, load_bytes_per_s: 1e12 } }] });
  });
  afterAll(() => slowStack?.close());

  it('reports a job whose log ended in an error as ended, even before the agent has moved it out of active', async () => {
    // The agent writes the terminal event first and moves the BullMQ job afterwards; a GET
    // (or a DELETE's answer) in between must agree with what the job's stream already said.
    // The test writes that event itself, seconds away from the agent's next token.
    const redis = new Redis(slowStack.redisUrl);
    try {
      const job = await submit(slowStack, { model: MODEL, prompt: 'stay running', options: { num_predict: 2000 } });
      await expect.poll(() => jobStatus(slowStack, job.id), { timeout: 10_000 }).toBe('running');
      await new EventLog(redis, redisKeys(slowStack.prefix)).append(job.id, { type: 'error', code: 'cancelled', message: 'cancelled by client' });
      const record = await fetch(`${slowStack.apiUrl}/v1/jobs/${job.id}`).then((r) => r.json() as Promise<any>);
      expect(record).toMatchObject({ status: 'cancelled', error: { code: 'cancelled' } });
      await fetch(`${slowStack.apiUrl}/v1/jobs/${job.id}`, { method: 'DELETE' });
      await expect.poll(async () => (await simStats(slowStack)).active_requests, { timeout: 5_000 }).toBe(0);
    } finally {
      redis.disconnect();
    }
  });

  it('reports a job whose log ended with done as completed, with the answer its stream carried', async () => {
    const redis = new Redis(slowStack.redisUrl);
    try {
      const job = await submit(slowStack, { model: MODEL, prompt: 'stay running', options: { num_predict: 2000 } });
      await expect.poll(() => jobStatus(slowStack, job.id), { timeout: 10_000 }).toBe('running');
      const log = new EventLog(redis, redisKeys(slowStack.prefix));
      // As if the agent had streamed a restart, then an answer, and not yet stored the result.
      await log.append(job.id, { type: 'token', text: 'void ' });
      await log.append(job.id, { type: 'restarted', reason: 'agent_lost', attempt: 2 });
      await log.append(job.id, { type: 'started', agent: 'agent-x', cold: false, load_ms: 0 });
      await log.append(job.id, { type: 'token', text: 'Hello' });
      await log.append(job.id, { type: 'token', text: ' world' });
      const timings = { queued_ms: 1, load_ms: 0, ttft_ms: 2, total_ms: 3 };
      await log.append(job.id, { type: 'done', finish_reason: 'stop', usage: { prompt_tokens: 2, completion_tokens: 2 }, timings });
      const record = await fetch(`${slowStack.apiUrl}/v1/jobs/${job.id}`).then((r) => r.json() as Promise<any>);
      expect(record).toMatchObject({
        status: 'completed',
        result: { text: 'Hello world', finish_reason: 'stop' },
        usage: { prompt_tokens: 2, completion_tokens: 2 },
        timings,
        agent: 'agent-x',
      });
      await fetch(`${slowStack.apiUrl}/v1/jobs/${job.id}`, { method: 'DELETE' });
      await expect.poll(async () => (await simStats(slowStack)).active_requests, { timeout: 5_000 }).toBe(0);
    } finally {
      redis.disconnect();
    }
  });
});
