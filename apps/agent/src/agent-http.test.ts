import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { RedisConnection } from '@switchyard/redis';
import { pino } from 'pino';
import { BackendError, type Backend, type BackendLoadedModel, type BackendModel, type BackendModelInfo, type EmbedResponse, type GenerateChunk } from '@switchyard/backends';
import { closeRedis, createRedis } from '@switchyard/redis';
import { freePort, testRedis } from '@switchyard/testing';
import { startAgentHttp, type AgentHttp } from './agent-http.js';
import { createAgentMetrics } from './agent-metrics.js';
import { ModelInventory } from './model-inventory.js';

const silent = pino({ level: 'silent' });

/** A backend with one model that can be switched off (it then fails as Ollama's client does when nothing listens). */
class SwitchableBackend implements Backend {
  readonly kind = 'ollama' as const;
  readonly url = 'http://switchable-backend';
  up = true;
  private check(): void {
    if (!this.up) {
      throw new BackendError('Ollama at http://switchable-backend failed on /api/tags: connect ECONNREFUSED', undefined, 'unavailable', {
        cause: Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
      });
    }
  }
  async version(): Promise<string> {
    return 'test';
  }
  async listModels(): Promise<BackendModel[]> {
    this.check();
    return [{ name: 'qwen2.5:0.5b', digest: 'a'.repeat(64), size_bytes: 4e8 }];
  }
  async listLoaded(): Promise<BackendLoadedModel[]> {
    this.check();
    return [];
  }
  async show(): Promise<BackendModelInfo> {
    return { raw: {} };
  }
  embed(): Promise<EmbedResponse> {
    return Promise.reject(new Error('not used'));
  }

  async *generate(): AsyncIterable<GenerateChunk> {
    throw new Error('not used');
  }
  async load(): Promise<void> {}
  async unload(): Promise<void> {}
  async close(): Promise<void> {}
}

const opened: Array<{ http: AgentHttp; redis: RedisConnection }> = [];
afterEach(async () => {
  for (const { http, redis } of opened.splice(0)) {
    await http.close();
    await closeRedis(redis);
  }
});

async function start(redisUrl = testRedis()) {
  const backend = new SwitchableBackend();
  const inventory = new ModelInventory(backend, silent, { numCtx: 4096, parallel: 1 });
  const redis = createRedis(redisUrl, 'worker');
  redis.on('error', () => undefined);
  const metrics = createAgentMetrics();
  const http = await startAgentHttp({ host: '127.0.0.1', port: 0, agentId: 'agent-http-test', registry: metrics.registry, redis, inventory, logger: silent });
  opened.push({ http, redis });
  return { backend, inventory, redis, metrics, http };
}

async function get(url: string, init: RequestInit = {}) {
  const response = await fetch(url, init);
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, json: () => JSON.parse(text) as Record<string, any> };
}

describe('the agent http server', () => {
  it('answers /healthz while starting, and /readyz only once started with Redis and the backend answering', async () => {
    const { backend, inventory, redis, http } = await start();
    expect(http.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const health = await get(`${http.url}/healthz`);
    expect(health.status).toBe(200);
    expect(health.json()).toEqual({ status: 'ok', agent: 'agent-http-test', pid: process.pid });

    await new Promise<void>((resolve) => (redis.status === 'ready' ? resolve() : redis.once('ready', () => resolve())));
    const starting = await get(`${http.url}/readyz`);
    expect(starting.status).toBe(503);
    expect(starting.json()).toEqual({
      status: 'not_ready',
      agent: 'agent-http-test',
      not_ready: ['agent', 'backend', 'inventory'],
      checks: { agent: 'starting', redis: 'ok', backend: 'not read yet', inventory: 'not read yet' },
    });

    expect(await inventory.refresh()).toBe(true);
    http.ready();
    const ready = await get(`${http.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready', agent: 'agent-http-test', checks: { agent: 'ok', redis: 'ok', backend: 'ok', inventory: 'ok' } });

    // The backend goes away: the next model-list read says so; the list read before stays.
    backend.up = false;
    expect(await inventory.refresh()).toBe(false);
    const down = await get(`${http.url}/readyz`);
    expect(down.status).toBe(503);
    expect(down.json()).toMatchObject({ not_ready: ['backend'], checks: { backend: 'unreachable (ECONNREFUSED)', inventory: 'ok' } });

    backend.up = true;
    await inventory.refresh();
    expect((await get(`${http.url}/readyz`)).status).toBe(200);
    http.stopping();
    expect((await get(`${http.url}/readyz`)).json()).toMatchObject({ not_ready: ['agent'], checks: { agent: 'draining' } });
  });

  it('is not ready while Redis does not answer, and says so without waiting for it', async () => {
    const deadPort = await freePort();
    const { inventory, http } = await start(`redis://127.0.0.1:${deadPort}`);
    await inventory.refresh();
    http.ready();
    const started = Date.now();
    const response = await get(`${http.url}/readyz`);
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(response.status).toBe(503);
    expect(response.json()).toMatchObject({ not_ready: ['redis'], checks: { redis: expect.stringMatching(/^not connected \((connecting|reconnecting)\)$/) } });
    // Liveness is the process, not its dependencies.
    expect((await get(`${http.url}/healthz`)).status).toBe(200);
  });

  it('serves Prometheus text on /metrics, GET and HEAD only, and nothing else', async () => {
    const { metrics, http } = await start();
    metrics.leaseHeld('llama3.1:8b');
    const scrape = await get(`${http.url}/metrics`);
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(scrape.text).toContain('# HELP switchyard_agent_warm_lease_waits_total ');
    expect(scrape.text).toContain('switchyard_agent_warm_lease_waits_total{model="llama3.1:8b"} 1');
    expect(scrape.text).toContain('switchyard_agent_process_resident_memory_bytes');

    const head = await get(`${http.url}/healthz`, { method: 'HEAD' });
    expect([head.status, head.text]).toEqual([200, '']);
    const post = await get(`${http.url}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await get(`${http.url}/v1/jobs`)).status).toBe(404);
  });

  it('fails to start with a line naming AGENT_HTTP_PORT when the port is taken', async () => {
    const holder = createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const { port } = holder.address() as { port: number };
    try {
      const backend = new SwitchableBackend();
      const attempt = startAgentHttp({
        host: '127.0.0.1',
        port,
        agentId: 'agent-http-test',
        registry: createAgentMetrics().registry,
        redis: { status: 'ready', ping: async () => 'PONG' } as unknown as RedisConnection,
        inventory: new ModelInventory(backend, silent, { numCtx: 4096, parallel: 1 }),
        logger: silent,
      });
      await expect(attempt).rejects.toThrow(`agent http: port ${port} is already in use: set AGENT_HTTP_PORT to a free port, or 0 for any free one`);
    } finally {
      holder.close();
    }
  });
});
