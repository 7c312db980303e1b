import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { Ollama } from 'ollama';
import { Redis } from 'ioredis';
import { redisKeys } from '@switchyard/protocol';
import { ScriptedJobs } from '@switchyard/redis';
import { jobStatus, submitJob } from '../support/client.js';
import { startStack, type Stack } from '../support/stack.js';

const MODEL = 'qwen2.5:0.5b';

/** Real-time generation (qwen2.5:0.5b at its catalog speed, ~220 tokens/s) with instant loads. */
const REAL_TIME_SIM = { time_scale: 1, load_overhead_ms: 0, load_bytes_per_s: 1e12 };

function client(stack: Stack, options: ConstructorParameters<typeof OpenAI>[0] = {}): OpenAI {
  return new OpenAI({ baseURL: `${stack.apiUrl}/v1`, apiKey: 'sk-test', maxRetries: 0, timeout: 30_000, ...options });
}

/** What the simulator answers directly for the same chat turn (the text the broker must relay). */
async function directChat(
  stack: Stack,
  messages: Array<{ role: string; content: string }>,
  options: Record<string, unknown>,
): Promise<{ text: string; eval_count: number; prompt_eval_count: number }> {
  const body = await fetch(`${stack.sims[0]!.url}/api/chat`, {
    method: 'POST',
    body: JSON.stringify({ model: MODEL, messages, stream: false, options }),
  }).then((response) => response.json() as Promise<any>);
  return { text: body.message.content, eval_count: body.eval_count, prompt_eval_count: body.prompt_eval_count };
}

describe('OpenAI-compatible endpoints, judged by the official openai client', () => {
  let stack: Stack;
  let openai: OpenAI;
  beforeAll(async () => {
    // One slot, so a job can be held in the queue behind another. A job a test acts on
    // while it runs is held in the simulator (stack.hold): the answers here end after at most
    // 400 tokens (under 2 s), which a loaded machine can spend before the test acts.
    stack = await startStack({ nodes: [{ sim: { ...REAL_TIME_SIM, response_tokens_min: 100, response_tokens_max: 400 }, agent: { slots: 1 } }] });
    openai = client(stack);
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('streams chat completion chunks with a role chunk, a finish_reason chunk, a usage chunk and [DONE]', async () => {
    const messages = [
      { role: 'system' as const, content: 'be brief' },
      { role: 'user' as const, content: 'Why is the sky blue?' },
    ];
    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages,
      stream: true,
      stream_options: { include_usage: true },
      seed: 7,
      max_tokens: 30,
      // Fields a broker cannot honour are ignored, not refused.
      logit_bias: { '50256': -100 },
      store: false,
    });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(chunks.length).toBeGreaterThan(3);
    const id = chunks[0]!.id;
    expect(id).toMatch(/^chatcmpl-[A-Za-z0-9_-]+$/);
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({ id, object: 'chat.completion.chunk', model: MODEL, created: chunks[0]!.created });
    }
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    const finish = chunks.at(-2)!;
    expect(finish.choices[0]!.finish_reason).toMatch(/^(stop|length)$/);
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();
    for (const chunk of chunks.slice(0, -2)) {
      expect(chunk.choices[0]!.finish_reason).toBeNull();
      expect(chunk.choices[0]!.logprobs).toBeNull();
    }

    const text = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('');
    const direct = await directChat(stack, messages, { seed: 7, num_predict: 30 });
    expect(text).toBe(direct.text);
    expect(usageChunk.usage).toEqual({
      prompt_tokens: direct.prompt_eval_count,
      completion_tokens: direct.eval_count,
      total_tokens: direct.prompt_eval_count + direct.eval_count,
    });

    // The job behind the answer is an ordinary Switchyard job.
    const record = await fetch(`${stack.apiUrl}/v1/jobs/${id.slice('chatcmpl-'.length)}`).then((r) => r.json() as Promise<any>);
    expect(record).toMatchObject({ status: 'completed', result: { text } });
  });

  it('answers a non-streaming chat completion once, with usage', async () => {
    const messages = [{ role: 'user' as const, content: 'hello there' }];
    const completion = await openai.chat.completions.create({ model: MODEL, messages, seed: 3, max_completion_tokens: 5 });
    const direct = await directChat(stack, messages, { seed: 3, num_predict: 5 });
    expect(completion).toMatchObject({
      object: 'chat.completion',
      model: MODEL,
      choices: [{ index: 0, message: { role: 'assistant', content: direct.text }, finish_reason: 'length', logprobs: null }],
      usage: { prompt_tokens: direct.prompt_eval_count, completion_tokens: 5, total_tokens: direct.prompt_eval_count + 5 },
    });
    expect(completion.id).toMatch(/^chatcmpl-/);
  });

  it('serves text completions, streaming and not', async () => {
    const whole = await openai.completions.create({ model: MODEL, prompt: 'Once upon a time', seed: 5, max_tokens: 12 });
    expect(whole).toMatchObject({ object: 'text_completion', model: MODEL, choices: [{ index: 0, finish_reason: 'length', logprobs: null }] });
    expect(whole.id).toMatch(/^cmpl-/);
    expect(whole.usage?.completion_tokens).toBe(12);

    const stream = await openai.completions.create({
      model: MODEL,
      prompt: 'Once upon a time',
      seed: 5,
      max_tokens: 12,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Completions.Completion[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    for (const chunk of chunks) expect(chunk.object).toBe('text_completion');
    expect(chunks.map((chunk) => chunk.choices[0]?.text ?? '').join('')).toBe(whole.choices[0]!.text);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('length');
    expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: 12 });
  });

  it('lists and retrieves models in OpenAI shape', async () => {
    const ids: string[] = [];
    for await (const model of openai.models.list()) {
      expect(model).toMatchObject({ object: 'model', owned_by: 'switchyard' });
      expect(typeof model.created).toBe('number');
      ids.push(model.id);
    }
    expect(ids).toEqual(expect.arrayContaining(['qwen2.5:0.5b', 'llama3.2:3b', 'llama3.1:8b']));

    const one = await openai.models.retrieve(MODEL);
    expect(one).toMatchObject({ id: MODEL, object: 'model', owned_by: 'switchyard', agents: ['agent-0'] });
    // Names are canonical: `qwen2.5:0.5b` and `library/qwen2.5:0.5b` are one model.
    expect((await openai.models.retrieve('library/qwen2.5:0.5b')).id).toBe(MODEL);

    const missing = await openai.models.retrieve('gpt-4o').catch((error: unknown) => error);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    expect((missing as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });

  it('refuses bad input with a 400 naming the parameter, in OpenAI error shape', async () => {
    const error = await openai.chat.completions
      .create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], temperature: 'hot' as unknown as number })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    const bad = error as InstanceType<typeof OpenAI.BadRequestError>;
    expect(bad.param).toBe('temperature');
    expect(bad.type).toBe('invalid_request_error');

    const raw = await fetch(`${stack.apiUrl}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: [{ type: 'text', text: 42 }] }] }),
    });
    expect(raw.status).toBe(400);
    const body = (await raw.json()) as any;
    expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    expect(body.error.param).toBe('messages[0].content');

    const unknownModel = await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }).catch((caught: unknown) => caught);
    expect(unknownModel).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknownModel as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
  });

  it('accepts content as an array of text parts and response_format json_object', async () => {
    const completion = await openai.chat.completions.create({
      model: MODEL,
      messages: [
        { role: 'developer', content: 'answer in JSON' },
        { role: 'user', content: [{ type: 'text', text: 'list three colours' }] },
      ],
      response_format: { type: 'json_object' },
      max_tokens: 4,
    });
    expect(completion.choices[0]!.message.content!.length).toBeGreaterThan(0);
  });

  it('ends a stream with an error chunk when the job fails mid-stream; the client throws', async () => {
    stack.hold({ prompt: 'go on forever', afterTokens: 1 });
    const stream = await openai.chat.completions.create({
      model: MODEL,
      messages: [{ role: 'user', content: 'go on forever' }],
      stream: true,
      max_tokens: 5_000,
    });
    let text = '';
    let cancelled = false;
    const consumed = (async () => {
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        if (!cancelled && text.length > 0) {
          cancelled = true;
          const jobId = chunk.id.slice('chatcmpl-'.length);
          const response = await fetch(`${stack.apiUrl}/v1/jobs/${jobId}`, { method: 'DELETE' });
          expect([200, 202]).toContain(response.status);
        }
      }
    })();
    const error = await consumed.then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as Error).message).toMatch(/cancelled/);
    expect(text.length).toBeGreaterThan(0);
  });

  it('cancels the job at once when the client goes away mid-stream', async () => {
    stack.hold({ prompt: 'a very long answer please', afterTokens: 1 });
    const controller = new AbortController();
    const stream = await openai.chat.completions.create(
      { model: MODEL, messages: [{ role: 'user', content: 'a very long answer please' }], stream: true, max_tokens: 5_000 },
      { signal: controller.signal },
    );
    let jobId = '';
    for await (const chunk of stream) {
      jobId = chunk.id.slice('chatcmpl-'.length);
      if (chunk.choices[0]?.delta.content) break; // leaving the loop aborts the request
    }
    expect(jobId).not.toBe('');
    await expect.poll(() => jobStatus(stack, jobId), { timeout: 10_000 }).toBe('cancelled');
  });

  describe('restarted jobs (an agent lost mid-job; injected into the job log as an agent would write it)', () => {
    let redis: Redis;
    let events: ScriptedJobs;
    beforeAll(() => {
      redis = new Redis(stack.redisUrl);
      events = new ScriptedJobs(redis, redisKeys(stack.prefix));
    });
    afterAll(() => redis?.disconnect());

    it('continues transparently when the restart comes before any text was sent', async () => {
      // The blocker holds the agent's only slot until its DELETE below.
      stack.hold({ prompt: 'occupy the only slot', afterTokens: 1 });
      const blocker = await submitJob(stack, { model: 'llama3.1:8b', prompt: 'occupy the only slot', options: { num_predict: 1_000 } });
      await expect.poll(() => jobStatus(stack, blocker.id), { timeout: 10_000 }).toBe('running');
      const messages = [{ role: 'user' as const, content: 'restart me early' }];
      const stream = await openai.chat.completions.create({ model: MODEL, messages, stream: true, seed: 1, max_tokens: 20 });
      const iterator = stream[Symbol.asyncIterator]();
      const first = (await iterator.next()).value as OpenAI.Chat.Completions.ChatCompletionChunk;
      expect(first.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
      const jobId = first.id.slice('chatcmpl-'.length);
      expect(await jobStatus(stack, jobId)).toBe('queued');
      await events.append(jobId, { type: 'restarted', reason: 'agent_lost', attempt: 2 });
      await fetch(`${stack.apiUrl}/v1/jobs/${blocker.id}`, { method: 'DELETE' });

      let text = '';
      for (let next = await iterator.next(); !next.done; next = await iterator.next()) text += next.value.choices[0]?.delta.content ?? '';
      expect(text).toBe((await directChat(stack, messages, { seed: 1, num_predict: 20 })).text);
    });

    it('ends the stream with an error chunk and cancels the job when the restart comes after text was sent', async () => {
      // Still running when the restart is heard, so it is the restart that ends it.
      stack.hold({ prompt: 'restart me late', afterTokens: 1 });
      const stream = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'restart me late' }], stream: true, max_tokens: 5_000 });
      let jobId = '';
      const error = await (async () => {
        for await (const chunk of stream) {
          if (!jobId && chunk.choices[0]?.delta.content) {
            jobId = chunk.id.slice('chatcmpl-'.length);
            await events.append(jobId, { type: 'restarted', reason: 'agent_lost', attempt: 2 });
          }
        }
      })().then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(OpenAI.APIError);
      expect((error as Error).message).toMatch(/restarted/);
      await expect.poll(() => jobStatus(stack, jobId), { timeout: 10_000 }).toBe('cancelled');
    });
  });
});

describe('OpenAI client: API keys, and refusals it retries after Retry-After', () => {
  const KEY = 'sk-team-a-0123456789abcdef';
  let stack: Stack;
  beforeAll(async () => {
    // Keys on; one job in flight per tenant, so a second one is refused with 429; short
    // Retry-After values so the client's waits stay short.
    stack = await startStack({
      nodes: [{ sim: { ...REAL_TIME_SIM, response_tokens_min: 100, response_tokens_max: 400 } }],
      api: { apiKeys: `team-a:${KEY}`, tenantInFlightLimit: 1, retryAfterMaxSeconds: 2, retryAfterFallbackSeconds: 1 },
    });
  });
  afterAll(() => stack?.close());

  it('maps Authorization: Bearer to the tenant; a bad key is a 401 AuthenticationError', async () => {
    const wrong = await client(stack, { apiKey: 'sk-not-a-key-0000000000' })
      .chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }] })
      .catch((error: unknown) => error);
    expect(wrong).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((wrong as InstanceType<typeof OpenAI.AuthenticationError>).type).toBe('authentication_error');
    const models = await client(stack, { apiKey: 'sk-not-a-key-0000000000' })
      .models.retrieve(MODEL)
      .catch((error: unknown) => error);
    expect(models).toBeInstanceOf(OpenAI.AuthenticationError);

    const completion = await client(stack, { apiKey: KEY }).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: 2 });
    const jobId = completion.id.slice('chatcmpl-'.length);
    // The job belongs to the key's tenant: visible with the key, not without.
    expect((await fetch(`${stack.apiUrl}/v1/jobs/${jobId}`, { headers: { Authorization: `Bearer ${KEY}` } })).status).toBe(200);

    // The Ollama endpoints take the same keys (ollama-js: the `headers` option).
    const anonymous = await new Ollama({ host: stack.apiUrl }).list().catch((error: unknown) => error as { status_code: number; error: string });
    expect(anonymous).toMatchObject({ status_code: 401 });
    const tags = await new Ollama({ host: stack.apiUrl, headers: { Authorization: `Bearer ${KEY}` } }).list();
    expect(tags.models.map((model) => model.name)).toContain(MODEL);
  });

  it('backs off for Retry-After on a 429 (tenant limit), then succeeds once a slot frees', async () => {
    // The tenant's one job in flight, held until the DELETE that frees the slot.
    stack.hold({ prompt: 'hold the tenant slot', afterTokens: 1 });
    const blocker = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', Authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ model: MODEL, prompt: 'hold the tenant slot', options: { num_predict: 5_000 }, detach: true }),
    }).then((response) => response.json() as Promise<{ id: string }>);

    // The tenant's slot frees while the client waits.
    const { attempts, countingFetch } = recordingFetch(429, async () => {
      await fetch(`${stack.apiUrl}/v1/jobs/${blocker.id}`, { method: 'DELETE', headers: { Authorization: `Bearer ${KEY}` } });
    });
    const openai = client(stack, { apiKey: KEY, maxRetries: 2, fetch: countingFetch });
    const completion = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    expect(completion.choices[0]!.message.content).toBeTruthy();

    expect(attempts.map((attempt) => attempt.status)).toEqual([429, 200]);
    const [refused, accepted] = attempts as [(typeof attempts)[0], (typeof attempts)[0]];
    expect(refused.body.error).toMatchObject({ type: 'rate_limit_error', code: 'tenant_limit', param: null });
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(accepted.at - refused.at).toBeGreaterThanOrEqual(refused.retryAfterMs - 50);
  }, 40_000);

  it('backs off for Retry-After on a 503 (no live agent), then succeeds once an agent is back', async () => {
    await stack.agents[0]!.close();
    // Once the agent's heartbeat is gone nothing is servable.
    await expect.poll(async () => (await client(stack, { apiKey: KEY }).models.list()).data.some((model: any) => model.servable), { timeout: 10_000 }).toBe(false);

    // The fleet recovers while the client waits.
    const { attempts, countingFetch } = recordingFetch(503, async (count) => {
      if (count === 1) void stack.addAgent(0);
    });
    const openai = client(stack, { apiKey: KEY, maxRetries: 3, fetch: countingFetch });
    const completion = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3 });
    expect(completion.choices[0]!.message.content).toBeTruthy();

    expect(attempts[0]!.status).toBe(503);
    expect(attempts.at(-1)!.status).toBe(200);
    const refused = attempts[0]!;
    expect(refused.body.error).toMatchObject({ type: 'server_error', code: 'no_capacity', param: null });
    expect(refused.retryAfterMs).toBeGreaterThan(0);
    expect(attempts[1]!.at - refused.at).toBeGreaterThanOrEqual(refused.retryAfterMs - 50);
  }, 40_000);
});

/**
 * A fetch for the openai client that records every attempt (status, Retry-After in ms, and
 * the body of a refusal with `refusalStatus`) and calls `onRefusal` with the attempt count.
 */
function recordingFetch(refusalStatus: number, onRefusal: (count: number) => Promise<void>) {
  const attempts: Array<{ at: number; status: number; retryAfterMs: number; body?: any }> = [];
  const countingFetch: typeof fetch = async (input, init) => {
    const response = await fetch(input, init);
    const retryAfterMs = Number(response.headers.get('retry-after-ms') ?? Number(response.headers.get('retry-after')) * 1000);
    const entry: (typeof attempts)[number] = { at: Date.now(), status: response.status, retryAfterMs };
    attempts.push(entry);
    if (response.status === refusalStatus) {
      entry.body = await response.clone().json();
      await onRefusal(attempts.length);
    }
    return response;
  };
  return { attempts, countingFetch };
}
