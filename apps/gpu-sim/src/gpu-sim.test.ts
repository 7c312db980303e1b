/**
 * The simulated GPU seen from outside, through Ollama's API and /sim/stats: keep_alive,
 * VRAM budget and eviction, the queue limit. Timing-sensitive steps wait for state, never
 * for a fixed time, so a loaded machine only makes them slower.
 */
import { describe, expect, it } from 'vitest';
import { loadedNames, ndjsonLines, post, ps, startSim, stats, tinyModel, waitFor, type Line } from './test-support.js';

const HOUR_MS = 3_600_000;

async function load(sim: Awaited<ReturnType<typeof startSim>>, model: string, keep_alive?: string | number) {
  const response = await post(sim, '/api/generate', { model, ...(keep_alive === undefined ? {} : { keep_alive }) });
  return { status: response.status, body: (await response.json()) as Line };
}

function expiresInMs(entry: { expires_at: string } | undefined): number {
  if (!entry) throw new Error('model not loaded');
  return Date.parse(entry.expires_at) - Date.now();
}

describe('keep_alive', () => {
  it('defaults to 5 minutes', async () => {
    const sim = await startSim();
    await load(sim, 'qwen2.5:0.5b');
    const left = expiresInMs((await ps(sim))[0]);
    expect(left).toBeGreaterThan(4 * 60_000);
    expect(left).toBeLessThanOrEqual(5 * 60_000);
  });

  it('takes duration strings and numbers of seconds', async () => {
    const sim = await startSim();
    await load(sim, 'qwen2.5:0.5b', '10m');
    await load(sim, 'llama3.2:3b', 30);
    const entries = await ps(sim);
    const byName = new Map(entries.map((entry) => [entry.name, entry]));
    expect(expiresInMs(byName.get('qwen2.5:0.5b'))).toBeGreaterThan(9 * 60_000);
    expect(expiresInMs(byName.get('qwen2.5:0.5b'))).toBeLessThanOrEqual(10 * 60_000);
    expect(expiresInMs(byName.get('llama3.2:3b'))).toBeGreaterThan(0);
    expect(expiresInMs(byName.get('llama3.2:3b'))).toBeLessThanOrEqual(30_000);
    // Ollama lists the longest-lived first.
    expect(entries.map((entry) => entry.name)).toEqual(['qwen2.5:0.5b', 'llama3.2:3b']);
  });

  it('resets the expiry on every request', async () => {
    const sim = await startSim();
    await load(sim, 'qwen2.5:0.5b', '1m');
    await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'x', stream: false, keep_alive: '1h' });
    expect(expiresInMs((await ps(sim))[0])).toBeGreaterThan(HOUR_MS - 60_000);
  });

  it('0 unloads the model right after the request', async () => {
    const sim = await startSim();
    const response = await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'x', stream: false, keep_alive: 0 });
    expect(response.status).toBe(200);
    expect(await ps(sim)).toEqual([]);
    expect((await stats(sim)).unloads_total).toBe(1);
  });

  it('negative keeps the model forever (a far-future expires_at, as Ollama reports)', async () => {
    const sim = await startSim();
    await load(sim, 'qwen2.5:0.5b', -1);
    const entry = (await ps(sim))[0];
    expect(new Date(entry?.expires_at ?? 0).getUTCFullYear()).toBeGreaterThan(2200);
    expect((await stats(sim)).loaded[0]?.keep_alive_ms).toBeNull();
  });

  it('unloads a model when its keep_alive runs out', async () => {
    const sim = await startSim();
    await load(sim, 'qwen2.5:0.5b', '300ms');
    expect(await loadedNames(sim)).toEqual(['qwen2.5:0.5b']);
    await waitFor(async () => (await ps(sim)).length === 0, 'the model to expire');
    expect((await stats(sim)).unloads_total).toBe(1);
  });

  it('does not expire a model while it is generating', async () => {
    const sim = await startSim();
    // Held after a few tokens, the request is generating for as long as the test says, so
    // waiting more than twice the keep_alive proves the clock is stopped. (A long answer
    // would not: this model's own 220 tokens/s overrides a config tokens_per_s.)
    const hold = sim.hold({ afterTokens: 3 });
    const controller = new AbortController();
    const response = await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'x', keep_alive: '200ms' }, { signal: controller.signal });
    const lines = ndjsonLines(response);
    await hold.reached();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await loadedNames(sim)).toEqual(['qwen2.5:0.5b']);
    expect((await stats(sim)).unloads_total).toBe(0);
    controller.abort();
    await lines.return(undefined).catch(() => undefined);
    // The clock starts once the model is idle.
    await waitFor(async () => (await ps(sim)).length === 0, 'the model to expire after the request');
  });
});

describe('VRAM budget', () => {
  const GiB = 2 ** 30;
  const catalog = [tinyModel('a:1', 1), tinyModel('b:1', 1), tinyModel('c:1', 1.5), tinyModel('huge:1', 4)];

  it('evicts the idle model that expires soonest when a new one does not fit', async () => {
    const sim = await startSim({ vram_bytes: 3 * GiB, models: catalog });
    await load(sim, 'a:1', '10m');
    await load(sim, 'b:1', '5m');
    expect(await loadedNames(sim)).toEqual(['a:1', 'b:1']);
    const { status } = await load(sim, 'c:1', '10m');
    expect(status).toBe(200);
    expect(await loadedNames(sim)).toEqual(['a:1', 'c:1']);
    const s = await stats(sim);
    expect(s).toMatchObject({ evictions_total: 1, vram_total_bytes: 3 * GiB, vram_used_bytes: 2.5 * GiB });
    expect(s.vram_high_water_bytes).toBeLessThanOrEqual(3 * GiB);
  });

  it("refuses a model that can never fit with Ollama's 500 error", async () => {
    const sim = await startSim({ vram_bytes: 3 * GiB, models: catalog });
    for (const path of ['/api/generate', '/api/chat']) {
      const response = await post(sim, path, { model: 'huge:1', prompt: 'x', messages: [{ role: 'user', content: 'x' }] });
      expect(response.status).toBe(500);
      expect(await response.json()).toEqual({ error: 'model requires more system memory (4.0 GiB) than is available (3.0 GiB)' });
    }
    expect(await ps(sim)).toEqual([]);
  });

  it('refuses the 70B of the sample catalog on the default 24 GiB GPU', async () => {
    const sim = await startSim();
    const response = await post(sim, '/api/generate', { model: 'llama3.1:70b', prompt: 'x' });
    expect(response.status).toBe(500);
    expect(((await response.json()) as { error: string }).error).toMatch(/^model requires more system memory \(\d+\.\d GiB\) than is available \(24\.0 GiB\)$/);
  });

  it('makes a load wait while the model it would evict is busy, then evicts it', async () => {
    const sim = await startSim({
      vram_bytes: 2 * GiB,
      models: catalog,
      time_scale: 1,
      tokens_per_s: 20,
      response_tokens_min: 1_000,
      response_tokens_max: 1_000,
    });
    const busy = new AbortController();
    const running = await post(sim, '/api/generate', { model: 'a:1', prompt: 'x' }, { signal: busy.signal });
    const reader = ndjsonLines(running);
    await reader.next();
    const waiting = post(sim, '/api/generate', { model: 'c:1', prompt: 'y', stream: false, options: { num_predict: 2 } });
    await waitFor(async () => (await stats(sim)).queued_requests === 1, 'c to queue behind the busy model');
    expect(await loadedNames(sim)).toEqual(['a:1']);
    busy.abort();
    await reader.return(undefined).catch(() => undefined);
    const done = await waiting;
    expect(done.status).toBe(200);
    expect(((await done.json()) as Line).eval_count).toBe(2);
    expect(await loadedNames(sim)).toEqual(['c:1']);
    expect((await stats(sim)).vram_high_water_bytes).toBeLessThanOrEqual(2 * GiB);
  });

  it('never exceeds the budget under concurrent requests for many models', async () => {
    const models = Array.from({ length: 6 }, (_, i) => tinyModel(`m${i}:1`, 0.5 + (i % 3) * 0.5));
    const sim = await startSim({ vram_bytes: 2 * GiB, models, num_parallel: 2, max_loaded_models: 0 });
    const requests = Array.from({ length: 40 }, (_, i) =>
      post(sim, i % 2 ? '/api/chat' : '/api/generate', {
        model: `m${(i * 7) % 6}:1`,
        prompt: `p${i}`,
        messages: [{ role: 'user', content: `p${i}` }],
        stream: false,
        keep_alive: i % 5 === 0 ? 0 : '1m',
        options: { num_predict: 3 },
      }).then((response) => response.status),
    );
    expect(new Set(await Promise.all(requests))).toEqual(new Set([200]));
    const s = await stats(sim);
    expect(s.vram_high_water_bytes).toBeLessThanOrEqual(2 * GiB);
    expect(s.active_requests).toBe(0);
    expect(s.requests_total).toBe(40);
  });
});

describe('queue limit', () => {
  it("answers 503 with Ollama's message when max_queue requests already wait", async () => {
    const sim = await startSim({ num_parallel: 1, max_queue: 2 });
    // The first request holds the only slot until the test is done with the queue (after one
    // token: a stream's headers go out with its first line, and fetch waits for them).
    const hold = sim.hold({ prompt: /^a$/, afterTokens: 1 });
    const controller = new AbortController();
    const signal = controller.signal;
    const first = await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'a' }, { signal });
    await hold.reached();
    const queued = [
      post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'b' }, { signal }).catch((error: Error) => error),
      post(sim, '/api/chat', { model: 'qwen2.5:0.5b', messages: [{ role: 'user', content: 'c' }] }, { signal }).catch((error: Error) => error),
    ];
    await waitFor(async () => (await stats(sim)).queued_requests === 2, 'two requests to queue');
    const refused = await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'd' });
    expect(refused.status).toBe(503);
    expect(await refused.json()).toEqual({ error: 'server busy, please try again.  maximum pending requests exceeded' });
    expect((await stats(sim)).rejected_total).toBe(1);
    controller.abort();
    await first.text().catch(() => undefined);
    await Promise.all(queued);
    await waitFor(async () => (await stats(sim)).active_requests === 0, 'everything to end');
  });
});

describe('/sim/stats', () => {
  it('reports counters, loaded models and VRAM', async () => {
    const sim = await startSim();
    await post(sim, '/api/generate', { model: 'qwen2.5:0.5b', prompt: 'x', stream: false, options: { num_predict: 4 } });
    const s = await stats(sim);
    expect(s).toMatchObject({
      requests_total: 1,
      tokens_generated_total: 4,
      active_requests: 0,
      queued_requests: 0,
      running_requests: 0,
      cancelled_total: 0,
      loads_total: 1,
      vram_total_bytes: 24 * 2 ** 30,
      time_scale: 0.01,
      num_parallel: 4,
    });
    expect(s.loaded).toEqual([
      {
        name: 'qwen2.5:0.5b',
        state: 'ready',
        vram_bytes: s.vram_used_bytes,
        num_ctx: 4096,
        in_flight: 0,
        expires_at: expect.any(String),
        keep_alive_ms: 300_000,
      },
    ]);
    expect(sim.stats()).toEqual(s);
  });

  it('serves the effective config at /sim/config', async () => {
    const sim = await startSim({ gpu_name: 'Test GPU' });
    const config = (await (await fetch(`${sim.url}/sim/config`)).json()) as Record<string, unknown>;
    expect(config).toMatchObject({ gpu_name: 'Test GPU', port: 0, time_scale: 0.01 });
  });
});
