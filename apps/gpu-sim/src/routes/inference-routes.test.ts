/** `/api/generate` and `/api/chat` over real HTTP: wire format, lifecycle calls, errors, cancellation. */
import { describe, expect, it } from 'vitest';
import { ndjsonLines, post, ps, readNdjson, startSim, stats, waitFor, type Line } from '../test-support.js';

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const DURATIONS = ['total_duration', 'load_duration', 'prompt_eval_duration', 'eval_duration'] as const;

function expectPositiveInt(value: unknown) {
  expect(Number.isInteger(value)).toBe(true);
  expect(value as number).toBeGreaterThan(0);
}

function expectFinalMetrics(final: Line, tokens: number, prompt: string) {
  for (const field of DURATIONS) expectPositiveInt(final[field]);
  expect(final.prompt_eval_count).toBe(Math.ceil(prompt.length / 4));
  expect(final.eval_count).toBe(tokens);
  expect(final.total_duration as number).toBeGreaterThanOrEqual(final.eval_duration as number);
  expect(final.total_duration as number).toBeGreaterThanOrEqual(final.load_duration as number);
}

describe('POST /api/generate', () => {
  it('streams NDJSON: one token per line, then a final line with metrics in nanoseconds', async () => {
    const sim = await startSim();
    const prompt = 'Why is the sky blue?';
    const response = await post(sim, '/api/generate', { model: 'llama3.2:3b', prompt, options: { seed: 42 } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = await readNdjson(response);
    const final = lines.at(-1) as Line;
    const tokens = lines.slice(0, -1);
    expect(tokens.length).toBeGreaterThanOrEqual(16);
    for (const line of tokens) {
      expect(Object.keys(line)).toEqual(['model', 'created_at', 'response', 'done']);
      expect(line.model).toBe('llama3.2:3b');
      expect(line.created_at).toMatch(RFC3339);
      expect(line.response).toMatch(/^[A-Za-z]+[.,]? ?$/);
      expect(line.done).toBe(false);
    }
    expect(Object.keys(final)).toEqual([
      'model',
      'created_at',
      'response',
      'done',
      'done_reason',
      'context',
      'total_duration',
      'load_duration',
      'prompt_eval_count',
      'prompt_eval_duration',
      'eval_count',
      'eval_duration',
    ]);
    expect(final).toMatchObject({ model: 'llama3.2:3b', response: '', done: true, done_reason: 'stop' });
    expect(final.created_at).toMatch(RFC3339);
    expect(Array.isArray(final.context)).toBe(true);
    for (const id of final.context as unknown[]) expect(Number.isInteger(id)).toBe(true);
    expectFinalMetrics(final, tokens.length, prompt);
  });

  it('answers one JSON object with stream:false, the same text as the stream for the same seed', async () => {
    const sim = await startSim();
    const request = { model: 'qwen2.5:0.5b', prompt: 'Tell me a story', options: { seed: 7 } };
    const streamed = (await readNdjson(await post(sim, '/api/generate', request)))
      .slice(0, -1)
      .map((line) => line.response)
      .join('');
    const response = await post(sim, '/api/generate', { ...request, stream: false });
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const body = (await response.json()) as Line;
    expect(body).toMatchObject({ model: 'qwen2.5:0.5b', done: true, done_reason: 'stop', response: streamed });
    expect((body.response as string).endsWith('.')).toBe(true);
    expectFinalMetrics(body, body.eval_count as number, request.prompt);
  });

  it('stops at num_predict with done_reason "length"', async () => {
    const sim = await startSim();
    const body = (await (await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'count', stream: false, options: { num_predict: 5 } })).json()) as Line;
    expect(body).toMatchObject({ done_reason: 'length', eval_count: 5 });
    expect((body.response as string).split(' ').filter(Boolean)).toHaveLength(5);
  });

  it('is deterministic for seed + prompt and varies with the seed', async () => {
    const sim = await startSim();
    const text = async (seed?: number, prompt = 'same prompt') =>
      ((await (await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt, stream: false, ...(seed === undefined ? {} : { options: { seed } }) })).json()) as Line)
        .response;
    const a = await text(1);
    expect(await text(1)).toBe(a);
    expect(await text(2)).not.toBe(a);
    expect(await text(1, 'other prompt')).not.toBe(a);
    expect(await text()).toBe(await text()); // default_seed 0
  });

  it('resolves a name without tag to :latest and echoes the name it was sent', async () => {
    const sim = await startSim({ models: [{ name: 'solo', size_bytes: 1e8 }] });
    const body = (await (await post(sim, '/api/generate', { model: 'solo', prompt: 'hi', stream: false })).json()) as Line;
    expect(body.model).toBe('solo');
    expect((await ps(sim)).map((entry) => entry.name)).toEqual(['solo:latest']);
  });

  it('loads with an empty prompt and unloads with keep_alive 0', async () => {
    const sim = await startSim();
    for (const body of [{ model: 'qwen2.5:0.5b' }, { model: 'qwen2.5:0.5b', prompt: '' }]) {
      const response = await post(sim, '/api/generate', body);
      expect(response.headers.get('content-type')).toMatch(/^application\/json/);
      const load = (await response.json()) as Line;
      expect(Object.keys(load)).toEqual(['model', 'created_at', 'response', 'done', 'done_reason']);
      expect(load).toMatchObject({ model: 'qwen2.5:0.5b', response: '', done: true, done_reason: 'load' });
      expect((await ps(sim)).map((entry) => entry.name)).toEqual(['qwen2.5:0.5b']);
    }
    const unload = (await (await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', keep_alive: 0 })).json()) as Line;
    expect(unload).toMatchObject({ response: '', done: true, done_reason: 'unload' });
    expect(await ps(sim)).toEqual([]);
    expect((await stats(sim)).tokens_generated_total).toBe(0);
  });

  it('measures load time in nanoseconds (a cold load takes at least its simulated time)', async () => {
    // 0.5 GB at 1 GB/s plus 200 ms, scaled by 0.2: at least 140 ms of wall time.
    const sim = await startSim({ time_scale: 0.2, load_bytes_per_s: 1e9, load_overhead_ms: 200, models: [{ name: 'm:1', size_bytes: 5e8 }] });
    const cold = (await (await post(sim, '/api/generate', { model: 'm:1', prompt: 'x', stream: false, options: { num_predict: 1 } })).json()) as Line;
    expect(cold.load_duration as number).toBeGreaterThanOrEqual(140e6);
    const warm = (await (await post(sim, '/api/generate', { model: 'm:1', prompt: 'x', stream: false, options: { num_predict: 1 } })).json()) as Line;
    expect(warm.load_duration as number).toBeLessThan(cold.load_duration as number);
  });
});

describe('POST /api/chat', () => {
  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Why is the sky blue?' },
  ];
  const prompt = messages.map((m) => `${m.role}: ${m.content}`).join('\n');

  it('streams assistant messages, then a final line with metrics', async () => {
    const sim = await startSim();
    const response = await post(sim, '/api/chat', { model: 'llama3.2:3b', messages, options: { seed: 3 } });
    expect(response.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = await readNdjson(response);
    const final = lines.at(-1) as Line;
    const tokens = lines.slice(0, -1);
    for (const line of tokens) {
      expect(Object.keys(line)).toEqual(['model', 'created_at', 'message', 'done']);
      expect(line.message).toEqual({ role: 'assistant', content: expect.stringMatching(/^[A-Za-z]+[.,]? ?$/) });
      expect(line.done).toBe(false);
    }
    expect(Object.keys(final)).toEqual([
      'model',
      'created_at',
      'message',
      'done',
      'done_reason',
      'total_duration',
      'load_duration',
      'prompt_eval_count',
      'prompt_eval_duration',
      'eval_count',
      'eval_duration',
    ]);
    expect(final).toMatchObject({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'stop' });
    expectFinalMetrics(final, tokens.length, prompt);
  });

  it('answers one object with stream:false', async () => {
    const sim = await startSim();
    const body = (await (await post(sim, '/api/chat', { model: 'llama3.2:3b', messages, stream: false, options: { num_predict: 3 } })).json()) as Line;
    expect(body).toMatchObject({ done: true, done_reason: 'length', eval_count: 3, message: { role: 'assistant' } });
    expect(((body.message as Line).content as string).split(' ').filter(Boolean)).toHaveLength(3);
  });

  it('loads with messages: [] (or none) and unloads with keep_alive 0', async () => {
    const sim = await startSim();
    for (const body of [{ model: 'qwen2.5:0.5b', messages: [] }, { model: 'qwen2.5:0.5b' }]) {
      const load = (await (await post(sim, '/api/chat', body)).json()) as Line;
      expect(load).toMatchObject({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'load' });
    }
    expect((await ps(sim)).map((entry) => entry.name)).toEqual(['qwen2.5:0.5b']);
    const unload = (await (await post(sim, '/api/chat', { model: 'qwen2.5:0.5b', messages: [], keep_alive: 0 })).json()) as Line;
    expect(unload).toMatchObject({ message: { role: 'assistant', content: '' }, done: true, done_reason: 'unload' });
    expect(await ps(sim)).toEqual([]);
  });
});

describe('request errors', () => {
  it.each([
    ['/api/generate', { model: 'nope:7b', prompt: 'x' }, 404, "model 'nope:7b' not found"],
    ['/api/chat', { model: 'nope:7b', messages: [] }, 404, "model 'nope:7b' not found"],
    ['/api/generate', { prompt: 'x' }, 400, 'model is required'],
    ['/api/chat', { model: '' }, 400, 'model is required'],
    ['/api/generate', '{"model":', 400, /^invalid JSON body/],
    ['/api/generate', '', 400, 'missing request body'],
    ['/api/generate', [1, 2], 400, 'request body must be a JSON object'],
    ['/api/generate', { model: 'qwen2.5:0.5b', prompt: 'x', keep_alive: 'soon' }, 400, 'time: invalid duration "soon"'],
    ['/api/generate', { model: 'qwen2.5:0.5b', prompt: 5 }, 400, /^invalid request: prompt/],
    ['/api/chat', { model: 'qwen2.5:0.5b', messages: [{ content: 'no role' }] }, 400, /^invalid request: messages\[0\]\.role/],
  ])('%s %j → %i', async (path, body, status, message) => {
    const sim = await startSim();
    const response = await post(sim, path, body);
    expect(response.status).toBe(status);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    const json = (await response.json()) as { error: string };
    expect(Object.keys(json)).toEqual(['error']);
    expect(json.error).toMatch(typeof message === 'string' ? new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) : message);
  });

  it('accepts JSON bodies whatever the Content-Type says, or without one', async () => {
    const sim = await startSim();
    const body = JSON.stringify({ model: 'qwen2.5:0.5b', prompt: 'x', stream: false, options: { num_predict: 2 } });
    const headerSets: Record<string, string>[] = [{}, { 'Content-Type': 'text/plain' }, { 'Content-Type': 'application/x-www-form-urlencoded' }];
    for (const headers of headerSets) {
      const response = await fetch(`${sim.url}/api/generate`, { method: 'POST', headers, body });
      expect(response.status).toBe(200);
      expect(((await response.json()) as Line).eval_count).toBe(2);
    }
    // Node's fetch always sends a type for string bodies; a Uint8Array body goes without.
    const raw = await fetch(`${sim.url}/api/generate`, { method: 'POST', body: new TextEncoder().encode(body) });
    expect(raw.status).toBe(200);
  });
});

describe('cancellation', () => {
  it('stops generating when the client disconnects mid-stream and frees the slot', async () => {
    const sim = await startSim({
      time_scale: 1,
      tokens_per_s: 40,
      num_parallel: 1,
      response_tokens_min: 10_000,
      response_tokens_max: 10_000,
    });
    const controller = new AbortController();
    const response = await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'long' }, { signal: controller.signal });
    let seen = 0;
    try {
      for await (const line of ndjsonLines(response)) {
        expect(line.done).toBe(false);
        if (++seen === 3) controller.abort();
      }
    } catch (error) {
      expect((error as Error).name).toBe('AbortError');
    }
    const after = await waitFor(async () => {
      const s = await stats(sim);
      return s.active_requests === 0 && s.cancelled_total === 1 ? s : undefined;
    }, 'the cancelled request to leave');
    expect(after.running_requests).toBe(0);
    expect(after.tokens_generated_total).toBeLessThan(10_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await stats(sim)).tokens_generated_total).toBe(after.tokens_generated_total);
    // The single slot is free again.
    const next = await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'short', stream: false, options: { num_predict: 2 } });
    expect(((await next.json()) as Line).eval_count).toBe(2);
  });

  it('stops a non-streamed generation when the client disconnects', async () => {
    const sim = await startSim({ time_scale: 1, tokens_per_s: 40, response_tokens_min: 10_000, response_tokens_max: 10_000 });
    const controller = new AbortController();
    const pending = post(
      sim,
      '/api/chat',
      { model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'x' }], stream: false },
      {
        signal: controller.signal,
      },
    ).catch((error: Error) => error);
    await waitFor(async () => (await stats(sim)).tokens_generated_total >= 3, 'generation to start');
    controller.abort();
    expect(await pending).toMatchObject({ name: 'AbortError' });
    const after = await waitFor(async () => {
      const s = await stats(sim);
      return s.active_requests === 0 ? s : undefined;
    }, 'the request to end');
    expect(after.cancelled_total).toBe(1);
    expect(after.tokens_generated_total).toBeLessThan(10_000);
  });

  it('drops a queued request whose client gives up', async () => {
    const sim = await startSim({ num_parallel: 1 });
    // The first request keeps the only slot until its client leaves: the second must queue.
    const hold = sim.hold({ prompt: /^a$/, afterTokens: 1 });
    const first = new AbortController();
    const running = await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'a' }, { signal: first.signal });
    await hold.reached();
    const second = new AbortController();
    const queued = post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'b' }, { signal: second.signal }).catch((error: Error) => error);
    await waitFor(async () => (await stats(sim)).queued_requests === 1, 'the second request to queue');
    second.abort();
    expect(await queued).toMatchObject({ name: 'AbortError' });
    await waitFor(async () => (await stats(sim)).queued_requests === 0, 'the queue to empty');
    first.abort();
    await running.text().catch(() => undefined);
    const s = await waitFor(async () => {
      const current = await stats(sim);
      return current.active_requests === 0 ? current : undefined;
    }, 'all requests to end');
    expect(s.cancelled_total).toBe(2);
  });

  it('ends running streams with an error line when the server shuts down', async () => {
    const sim = await startSim({ time_scale: 1, tokens_per_s: 50, response_tokens_min: 1_000, response_tokens_max: 1_000 });
    const response = await post(sim, '/api/chat', { model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'hi' }] });
    const lines: Line[] = [];
    let closing: Promise<void> | undefined;
    for await (const line of ndjsonLines(response)) {
      lines.push(line);
      if (lines.length === 2) closing = sim.close();
    }
    await closing;
    expect(lines.at(-1)).toEqual({ error: 'server is shutting down' });
    expect(lines.length).toBeLessThan(1_000);
  });
});
