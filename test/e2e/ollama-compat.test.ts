import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ollama, type ChatResponse, type GenerateResponse } from 'ollama';
import { Redis } from 'ioredis';
import { redisKeys, type ModelInfoRecord } from '@switchyard/protocol';
import { ScriptedJobs } from '@switchyard/redis';
import { jobStatus } from '../support/client.js';
import { startStack, type Stack } from '../support/stack.js';

const MODEL = 'qwen2.5:0.5b';
/**
 * Real-time generation (~220 tokens/s for qwen2.5:0.5b), instant loads, answers of 300-600
 * tokens. A stream a test acts on while it runs is held in the simulator (stack.hold): a
 * 300-token answer lasts 1.4 s, which a loaded machine can spend before the test acts.
 */
const REAL_TIME_SIM = { time_scale: 1, load_overhead_ms: 0, load_bytes_per_s: 1e12, response_tokens_min: 300, response_tokens_max: 600 };

async function direct(stack: Stack, path: string, body: unknown): Promise<any> {
  return fetch(`${stack.sims[0]!.url}${path}`, { method: 'POST', body: JSON.stringify(body) }).then((response) => response.json());
}

/** An ollama client that also remembers the job id header of the last answer. */
function ollamaClient(stack: Stack, fetchWith: typeof fetch = fetch): { ollama: Ollama; lastJobId: () => string | null } {
  let jobId: string | null = null;
  const ollama = new Ollama({
    host: stack.apiUrl,
    fetch: async (input, init) => {
      const response = await fetchWith(input, init);
      jobId = response.headers.get('x-switchyard-job-id') ?? jobId;
      return response;
    },
  });
  return { ollama, lastJobId: () => jobId };
}

function expectFinalMetrics(last: ChatResponse | GenerateResponse): void {
  expect(last.done).toBe(true);
  expect(last.done_reason).toMatch(/^(stop|length)$/);
  for (const field of ['total_duration', 'load_duration', 'prompt_eval_count', 'prompt_eval_duration', 'eval_count', 'eval_duration'] as const) {
    expect(Number.isInteger(last[field]), field).toBe(true);
    expect(last[field], field).toBeGreaterThanOrEqual(0);
  }
  expect(last.eval_count).toBeGreaterThan(0);
  expect(last.total_duration).toBeGreaterThanOrEqual(last.eval_duration);
}

describe('Ollama-compatible endpoints, judged by the official ollama client', () => {
  let stack: Stack;
  let ollama: Ollama;
  let lastJobId: () => string | null;
  beforeAll(async () => {
    stack = await startStack({ nodes: [{ sim: REAL_TIME_SIM }] });
    ({ ollama, lastJobId } = ollamaClient(stack));
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('streams a chat as NDJSON and ends with the count and duration fields', async () => {
    const messages = [{ role: 'user', content: 'Why is the sky blue?' }];
    const parts: ChatResponse[] = [];
    for await (const part of await ollama.chat({ model: MODEL, messages, stream: true, options: { seed: 9, num_predict: 25 }, keep_alive: '10m' })) {
      parts.push(part);
    }
    expect(parts.length).toBeGreaterThan(2);
    for (const part of parts) expect(part).toMatchObject({ model: MODEL, message: { role: 'assistant' } });
    expect(parts.slice(0, -1).every((part) => part.done === false)).toBe(true);
    const last = parts.at(-1)!;
    expectFinalMetrics(last);

    const expected = await direct(stack, '/api/chat', { model: MODEL, messages, stream: false, options: { seed: 9, num_predict: 25 } });
    expect(parts.map((part) => part.message.content).join('')).toBe(expected.message.content);
    expect(last.eval_count).toBe(expected.eval_count);
    expect(last.prompt_eval_count).toBe(expected.prompt_eval_count);
    expect(last.done_reason).toBe(expected.done_reason);
  });

  it('answers a chat with stream: false in one object', async () => {
    const messages = [
      { role: 'system', content: 'be brief' },
      { role: 'user', content: 'hello' },
    ];
    const answer = await ollama.chat({ model: MODEL, messages, stream: false, options: { seed: 2, num_predict: 10 } });
    const expected = await direct(stack, '/api/chat', { model: MODEL, messages, stream: false, options: { seed: 2, num_predict: 10 } });
    expect(answer.message).toEqual({ role: 'assistant', content: expected.message.content });
    expectFinalMetrics(answer);
    expect(answer.eval_count).toBe(expected.eval_count);
  });

  it('generates, streaming and not, with the same text the node produces', async () => {
    const request = { model: MODEL, prompt: 'Tell me about rivers', options: { seed: 4, num_predict: 20 } };
    const expected = await direct(stack, '/api/generate', { ...request, stream: false });
    const whole = await ollama.generate({ ...request, stream: false });
    expect(whole.response).toBe(expected.response);
    expectFinalMetrics(whole);
    expect(whole.done_reason).toBe('length');

    let text = '';
    let last: GenerateResponse | undefined;
    for await (const part of await ollama.generate({ ...request, stream: true })) {
      text += part.response;
      last = part;
    }
    expect(text).toBe(expected.response);
    expectFinalMetrics(last!);
  });

  it('lists the fleet’s models as /api/tags does, and its version', async () => {
    const tags = await ollama.list();
    const simTags = (await fetch(`${stack.sims[0]!.url}/api/tags`).then((r) => r.json())) as any;
    const names = tags.models.map((model) => model.name);
    expect(names).toEqual([...simTags.models.map((model: any) => model.name)].sort());
    const qwen = tags.models.find((model) => model.name === MODEL)! as any;
    const simQwen = simTags.models.find((model: any) => model.name === MODEL);
    expect(qwen).toMatchObject({ model: MODEL, size: simQwen.size, digest: simQwen.digest, switchyard: { agents: ['agent-0'] } });
    expect(Number.isNaN(Date.parse(qwen.modified_at))).toBe(false);

    const version = await ollama.version();
    expect(version.version).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('shows models loaded across the fleet in /api/ps, with where', async () => {
    await ollama.generate({ model: MODEL, prompt: 'warm up', stream: false, options: { num_predict: 2 } });
    await expect.poll(async () => (await ollama.ps()).models.map((model) => model.name), { timeout: 10_000 }).toContain(MODEL);
    const entry = (await ollama.ps()).models.find((model) => model.name === MODEL)! as any;
    expect(entry.size_vram).toBeGreaterThan(0);
    expect(entry.size).toBe(entry.size_vram);
    expect(entry.switchyard.agents).toEqual([expect.objectContaining({ id: 'agent-0', size_vram: entry.size_vram })]);
    expect(Number.isNaN(Date.parse(entry.expires_at))).toBe(false);
  });

  it('answers /api/show from the model info an agent shared, 404 for an unknown model', async () => {
    const keys = redisKeys(stack.prefix);
    const redis = new Redis(stack.redisUrl);
    try {
      // Agents share their backend's /api/show answer; give them a moment, and write it
      // ourselves (what an agent would write) where this agent version does not yet.
      const shared = await expect
        .poll(() => redis.exists(keys.modelInfo(MODEL)), { timeout: 2_000 })
        .toBe(1)
        .then(
          () => true,
          () => false,
        );
      if (!shared) {
        const show = await direct(stack, '/api/show', { model: MODEL });
        const record: ModelInfoRecord = { model: MODEL, digest: 'sha256:test', show, agent: 'agent-0', updated_at: Date.now() };
        await redis.set(keys.modelInfo(MODEL), JSON.stringify(record));
      }
    } finally {
      redis.disconnect();
    }
    const show = await ollama.show({ model: MODEL });
    // ollama-js types model_info as a Map; over JSON it is a plain object.
    expect((show.model_info as unknown as Record<string, unknown>)['general.parameter_count']).toBe(494_032_768);
    expect(show.details.family).toBe('qwen2');

    const missing = await ollama.show({ model: 'nope:1b' }).catch((error: unknown) => error as any);
    expect(missing.status_code).toBe(404);
    expect(missing.error).toBe("model 'nope:1b' not found");
  });

  it('answers errors as {"error": ...} with Ollama status codes', async () => {
    const unknown = await ollama.chat({ model: 'nope:1b', messages: [{ role: 'user', content: 'x' }] }).catch((error: unknown) => error as any);
    expect(unknown.status_code).toBe(404);
    expect(unknown.error).toBe("model 'nope:1b' not found");

    const badOptions = await ollama.generate({ model: MODEL, prompt: 'x', options: { temperature: 'hot' as unknown as number } }).catch((error: unknown) => error as any);
    expect(badOptions.status_code).toBe(400);
    expect(badOptions.error).toMatch(/options\.temperature/);

    // Pulls and deletes go through the fleet catalog (catalog-pull.test.ts); pushing is not Switchyard's.
    const push = await ollama.push({ model: MODEL }).catch((error: unknown) => error as any);
    expect(push.status_code).toBe(404);
    expect(push.error).toMatch(/not available through Switchyard/);

    const badKeepAlive = await fetch(`${stack.apiUrl}/api/generate`, { method: 'POST', body: JSON.stringify({ model: MODEL, prompt: 'x', keep_alive: 'forever' }) });
    expect(badKeepAlive.status).toBe(400);
    expect(Object.keys((await badKeepAlive.json()) as object)).toEqual(['error']);
  });

  it('reads bodies sent without a JSON content type, as Ollama’s curl examples do', async () => {
    const response = await fetch(`${stack.apiUrl}/api/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: JSON.stringify({ model: MODEL, prompt: 'hi', stream: false, options: { num_predict: 3 } }),
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as any).eval_count).toBe(3);
  });

  it('answers load and unload requests without running a job', async () => {
    const load = await ollama.generate({ model: MODEL, prompt: '' });
    expect(load).toMatchObject({ model: MODEL, response: '', done: true, done_reason: 'load' });
    const unload = await ollama.chat({ model: MODEL, messages: [], keep_alive: 0 });
    expect(unload).toMatchObject({ done: true, done_reason: 'unload' });
    // keep_alive 0 does not take a model away from the fleet.
    const models = (await ollama.list()).models.map((model) => model.name);
    expect(models).toContain(MODEL);
  });

  it('cancels the job when the client aborts a stream', async () => {
    stack.hold({ prompt: 'a very long story', afterTokens: 3 });
    const stream = await ollama.generate({ model: MODEL, prompt: 'a very long story', stream: true, options: { num_predict: 5_000 } });
    const jobId = lastJobId();
    expect(jobId).toBeTruthy();
    // Three tokens, then the hold: abort once all three arrived (the agent may batch tokens
    // into fewer parts, so count words, not parts).
    let text = '';
    const consumed = (async () => {
      for await (const part of stream) {
        text += part.response;
        if (text.trim().split(/\s+/).length >= 3) stream.abort();
      }
    })().catch(() => undefined);
    await consumed;
    expect(text.trim().split(/\s+/)).toHaveLength(3);
    await expect.poll(() => jobStatus(stack, jobId!), { timeout: 10_000 }).toBe('cancelled');
  });

  it('ends a stream with an error line and cancels the job when it restarts after text was sent', async () => {
    const redis = new Redis(stack.redisUrl);
    const events = new ScriptedJobs(redis, redisKeys(stack.prefix));
    try {
      stack.hold({ prompt: 'restart me', afterTokens: 1 });
      const stream = await ollama.chat({ model: MODEL, messages: [{ role: 'user', content: 'restart me' }], stream: true, options: { num_predict: 5_000 } });
      const jobId = lastJobId()!;
      let injected = false;
      const error = await (async () => {
        for await (const part of stream) {
          if (!injected && part.message.content) {
            injected = true;
            await events.append(jobId, { type: 'restarted', reason: 'agent_lost', attempt: 2 });
          }
        }
      })().then(
        () => undefined,
        (caught: unknown) => caught as Error,
      );
      expect(error?.message).toMatch(/restarted/);
      await expect.poll(() => jobStatus(stack, jobId), { timeout: 10_000 }).toBe('cancelled');
    } finally {
      redis.disconnect();
    }
  });
});
