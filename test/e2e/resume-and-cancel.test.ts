import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeys } from '@switchyard/protocol';
import { ScriptedJobs } from '@switchyard/redis';
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
    // One slot so a second job has to wait in the queue. A job the test acts on is held in
    // the simulator (stack.hold) rather than made long: the sim's answers end after at most
    // 64 tokens whatever num_predict asks (0.3 s at this model's 220 tokens/s), and a loaded
    // machine can spend that before the test's DELETE arrives.
    stack = await startStack({
      nodes: [{ sim: { time_scale: 1, tokens_per_s: 100, load_overhead_ms: 0, load_bytes_per_s: 1e12 }, agent: { slots: 1 } }],
    });
  });
  afterAll(() => stack?.close());

  it('resumes with Last-Event-ID with no gap and no duplicate', async () => {
    // Paused after a few tokens, the first read is sure to end mid-stream.
    const hold = stack.hold({ prompt: 'tell me a long story', afterTokens: 5 });
    const body = { model: MODEL, prompt: 'tell me a long story', options: { seed: 11, num_predict: 60 } };
    const job = await submit(stack, body);
    const url = `${stack.apiUrl}${job.links.events}`;
    await hold.reached();
    const first = await readSse(url, { stopAfter: (event) => event.type === 'token' });
    const lastSeen = first.events.at(-1)!;
    expect(lastSeen.type).toBe('token');

    hold.release();
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
    // Held after three tokens: running (the agent wrote `started`) and unable to finish, so
    // the DELETE below always finds it running, however late it arrives.
    const hold = stack.hold({ prompt: 'go on forever', afterTokens: 3 });
    const job = await submit(stack, { model: MODEL, prompt: 'go on forever', options: { num_predict: 2000 } });
    const url = `${stack.apiUrl}${job.links.events}`;
    const streamed = readSse(url);
    await hold.reached();
    await expect.poll(() => jobStatus(stack, job.id), { timeout: 10_000 }).toBe('running');

    const cancel = await fetch(`${stack.apiUrl}/v1/jobs/${job.id}`, { method: 'DELETE' });
    expect(cancel.status).toBe(200);
    expect(((await cancel.json()) as any).status).toBe('cancelled');

    const sse = await streamed;
    const last = sse.events.at(-1)!;
    expect(last).toMatchObject({ type: 'error', code: 'cancelled' });
    // The first token goes out at once; the agent's coalescer may still hold the next two
    // when the cancel discards them, so only the simulator's count below is exact.
    expect(sse.events.some((event) => event.type === 'token')).toBe(true);

    // The simulator saw its client go (a cancelled request) and generated nothing past the
    // hold. Once no request is active its token loop has ended: no wait for "no more tokens".
    await expect.poll(async () => (await simStats(stack)).active_requests, { timeout: 5_000 }).toBe(0);
    const after = await simStats(stack);
    expect(after.cancelled_total).toBe(before.cancelled_total + 1);
    expect(after.tokens_generated_total).toBe(before.tokens_generated_total + 3);

    const record = await fetch(`${stack.apiUrl}/v1/jobs/${job.id}`).then((r) => r.json() as Promise<any>);
    expect(record.status).toBe('cancelled');
    expect(record.error.code).toBe('cancelled');
    // Cancelling again is a conflict, not a crash.
    expect((await fetch(`${stack.apiUrl}/v1/jobs/${job.id}`, { method: 'DELETE' })).status).toBe(409);
  });

  it('cancels a queued job without it ever reaching the GPU', async () => {
    // The blocker holds the only slot until released: the next job is queued, not a bet on
    // the blocker's length.
    const hold = stack.hold({ prompt: 'occupy the only slot' });
    const blocker = await submit(stack, { model: MODEL, prompt: 'occupy the only slot', options: { num_predict: 150 } });
    await hold.reached();
    const requestsBefore = (await simStats(stack)).requests_total;
    const waiting = await submit(stack, { model: MODEL, prompt: 'never runs' });
    expect(await jobStatus(stack, waiting.id)).toBe('queued');

    const cancel = await fetch(`${stack.apiUrl}/v1/jobs/${waiting.id}`, { method: 'DELETE' });
    expect(cancel.status).toBe(200);
    const sse = await readSse(`${stack.apiUrl}${waiting.links.events}`);
    expect(sse.events.map((event) => event.type)).toEqual(['queued', 'error']);
    expect(sse.events.at(-1)).toMatchObject({ code: 'cancelled' });

    // A job queued after it, while the blocker still holds the slot, ranks behind it: once
    // that one has run, the cancelled job would have run before it if it were still queued.
    // (An event to wait for, instead of a pause that hopes to be long enough.)
    const after = await submit(stack, { model: MODEL, prompt: 'runs after', options: { num_predict: 2 } });
    hold.release();
    await readSse(`${stack.apiUrl}${blocker.links.events}`);
    expect((await readSse(`${stack.apiUrl}${after.links.events}`)).events.at(-1)!.type).toBe('done');
    expect((await simStats(stack)).requests_total).toBe(requestsBefore + 1);
    expect(await jobStatus(stack, waiting.id)).toBe('cancelled');
  });
});

describe('a job whose stream ended while its agent still runs it (the record and the stream are one write)', () => {
  let slowStack: Stack;
  beforeAll(async () => {
    // Each job is held before its first token (slowStack.hold), so it is active on the agent
    // and its log stays quiet while the test writes to it. (This used to be a simulator
    // 1000× slower than real: seconds of quiet, a race a busy machine could still lose.)
    slowStack = await startStack({ nodes: [{ sim: { time_scale: 1, load_overhead_ms: 0, load_bytes_per_s: 1e12 } }] });
  });
  afterAll(() => slowStack?.close());

  it('reports a job whose stream ended in an error as ended, while BullMQ still has it active; the agent then stops', async () => {
    // The terminal event and the record's status are one script, so a GET in between the
    // event and BullMQ's move agrees with the stream. The test writes that event itself (as
    // the agent's attempt) while the agent's generation is held; when it resumes, its next
    // write is refused and it aborts the backend request.
    const redis = new Redis(slowStack.redisUrl);
    try {
      const hold = slowStack.hold({ prompt: 'stay running' });
      const job = await submit(slowStack, { model: MODEL, prompt: 'stay running', options: { num_predict: 2000 } });
      await hold.reached();
      await new ScriptedJobs(redis, redisKeys(slowStack.prefix)).append(job.id, { type: 'error', code: 'cancelled', message: 'cancelled by client' });
      const record = await fetch(`${slowStack.apiUrl}/v1/jobs/${job.id}`).then((r) => r.json() as Promise<any>);
      expect(record).toMatchObject({ status: 'cancelled', error: { code: 'cancelled' } });
      hold.release();
      await expect.poll(async () => (await simStats(slowStack)).active_requests, { timeout: 5_000 }).toBe(0);
    } finally {
      redis.disconnect();
    }
  });

  it('reports a job whose stream ended with done as completed, with the answer its stream carried', async () => {
    const redis = new Redis(slowStack.redisUrl);
    try {
      const hold = slowStack.hold({ prompt: 'stay running' });
      const job = await submit(slowStack, { model: MODEL, prompt: 'stay running', options: { num_predict: 2000 } });
      await hold.reached();
      const log = new ScriptedJobs(redis, redisKeys(slowStack.prefix));
      // As if the agent had streamed a restart, then an answer (the done carries the result).
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
      hold.release();
      await expect.poll(async () => (await simStats(slowStack)).active_requests, { timeout: 5_000 }).toBe(0);
    } finally {
      redis.disconnect();
    }
  });
});
