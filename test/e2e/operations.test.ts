import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { createApi, parseConfig } from '@switchyard/api';
import { freePort, uniquePrefix } from '@switchyard/testing';
import { submitJob as submit } from '../support/client.js';
import { FAST_SIM, startStack, type Stack } from '../support/stack.js';
import { createGpuSim } from '@switchyard/gpu-sim';

describe('operating the stack', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ api: { sseHeartbeatMs: 50 } });
  });
  afterAll(() => stack?.close());

  it('lists in Bull Board every model queue, including ones created after start-up', async () => {
    const list = async () => {
      const response = await fetch(`${stack.apiUrl}/admin/queues/api/queues?activeQueue=&page=1&jobsPerPage=10`);
      expect(response.status).toBe(200);
      const body = (await response.json()) as { queues: Array<{ name: string; displayName?: string }> };
      return body.queues;
    };
    expect((await list()).map((queue) => queue.displayName)).not.toContain('late-model:1b');
    // A node with a model nobody had joins after the API started; its first job creates the queue.
    stack.sims.push(await createGpuSim({ ...FAST_SIM, models: [{ name: 'late-model:1b', size_bytes: 1e8 }] }, { logger: stack.logger }));
    await stack.addAgent(stack.sims.length - 1);
    await expect.poll(async () => (await submit(stack, { model: 'late-model:1b', prompt: 'new queue', options: { num_predict: 2 } })).id, { timeout: 10_000 }).toBeTruthy();
    const queues = await list();
    const created = queues.find((queue) => queue.displayName === 'late-model:1b');
    // The board keys (and links) a queue by its readable name, not the encoded BullMQ name.
    expect(created?.name).toBe('late-model:1b');
    const page = await fetch(`${stack.apiUrl}/admin/queues`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<div id="root"');
  });

  it('sends SSE heartbeat comments while a job is quiet', async () => {
    // A running job whose stream stays open for several 50 ms heartbeat periods; the
    // comments arrive between events.
    const controller = new AbortController();
    // Held after its first token, so the stream is open for as many heartbeat periods as it takes.
    stack.hold({ prompt: 'slow', afterTokens: 1 });
    const slow = await submit(stack, { model: 'llama3.1:8b', prompt: 'slow', options: { num_predict: 400 } });
    const response = await fetch(`${stack.apiUrl}${slow.links.events}`, { signal: controller.signal });
    const reader = response.body!.getReader();
    let text = '';
    const decoder = new TextDecoder();
    while (!text.includes(': keep-alive')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    controller.abort();
    expect(text).toContain(': keep-alive\n\n');
  });
});

describe('when Redis is down', () => {
  it('answers 503 fast with a JSON error and reports not ready, while staying alive', async () => {
    const deadPort = await freePort();
    const api = await createApi(parseConfig({ redisUrl: `redis://127.0.0.1:${deadPort}`, redisPrefix: uniquePrefix('down'), host: '127.0.0.1', port: 0 }), {
      logger: pino({ level: 'silent' }),
    });
    const url = await api.listen();
    try {
      const started = Date.now();
      const response = await fetch(`${url}/v1/jobs`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'qwen2.5:0.5b', prompt: 'x' }),
      });
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('1');
      expect(((await response.json()) as any).error.code).toBe('redis_unavailable');
      expect(Date.now() - started).toBeLessThan(3_000);
      expect((await fetch(`${url}/readyz`)).status).toBe(503);
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
    } finally {
      await api.close();
    }
  });
});
