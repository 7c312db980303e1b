import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createParser } from 'eventsource-parser';
import type { FleetSummary } from '@switchyard/api';
import { SAMPLE_CATALOG } from '@switchyard/gpu-sim';
import { fleetSummaries } from '../support/fleet-summaries.js';
import { startStack, type Stack } from '../support/stack.js';
import { startTcpGate } from '../support/tcp-gate.js';
import { testRedis } from '@switchyard/testing';

const GB = 1e9;
const TIME_SCALE = 0.05;
const KEYS = { tenant: 'tenant-a-key-0123456789', admin: 'admin-key-0123456789abc' };
const ADMIN = { Authorization: `Bearer ${KEYS.admin}` };
const TENANT = { Authorization: `Bearer ${KEYS.tenant}` };
const PATHS = ['/admin/fleet', '/admin/fleet/app.js', '/admin/fleet/summary', '/admin/fleet/events'];

async function runJob(stack: Stack, model: string): Promise<void> {
  const submitted = await fetch(`${stack.apiUrl}/v1/jobs`, {
    method: 'POST',
    headers: { ...TENANT, 'Content-Type': 'application/json' },
    body: JSON.stringify({ model, prompt: 'fleet page', options: { num_predict: 3 } }),
  });
  expect(submitted.status).toBe(202);
  const job = (await submitted.json()) as { links: { events: string } };
  const events = await fetch(`${stack.apiUrl}${job.links.events}`, { headers: TENANT });
  let last = '';
  const parser = createParser({ onEvent: (message) => void (last = message.event ?? '') });
  const decoder = new TextDecoder();
  for await (const chunk of events.body!) parser.feed(decoder.decode(chunk, { stream: true }));
  expect(last).toBe('done');
}

async function summary(stack: Stack): Promise<FleetSummary> {
  const response = await fetch(`${stack.apiUrl}/admin/fleet/summary`, { headers: ADMIN });
  expect(response.status).toBe(200);
  return (await response.json()) as FleetSummary;
}

describe('the fleet summary behind /admin/fleet', () => {
  let stack: Stack;
  beforeAll(async () => {
    // 10 GB: llama3.2:3b (4.4 GB) and llama3.1:8b (7.6 GB) do not fit together, so the 8B evicts the 3B.
    stack = await startStack({
      api: { apiKeys: `a:${KEYS.tenant}`, adminApiKeys: KEYS.admin, fleetSummaryIntervalMs: 100 },
      nodes: [
        {
          sim: {
            vram_bytes: 10 * GB,
            time_scale: TIME_SCALE,
            models: SAMPLE_CATALOG.filter((model) => ['llama3.2:3b', 'llama3.1:8b'].includes(model.name)),
          },
          agent: { gpuVramBytes: [10 * GB], loadBytesPerSecond: 2e9 / TIME_SCALE, minResidencyMs: 1, displacementAgingMs: 10_000 * TIME_SCALE, slots: 1 },
        },
      ],
    });
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('is admin only: no key is 401, a tenant key 403, in the API’s JSON error shape, on the page, its script, the summary and the stream', async () => {
    for (const path of PATHS) {
      const anonymous = await fetch(`${stack.apiUrl}${path}`);
      expect(anonymous.status, path).toBe(401);
      expect(await anonymous.json(), path).toMatchObject({ error: { code: 'unauthorized', message: expect.stringContaining('admin API key') } });
      const tenant = await fetch(`${stack.apiUrl}${path}`, { headers: TENANT });
      expect(tenant.status, path).toBe(403);
      expect(await tenant.json(), path).toMatchObject({ error: { code: 'forbidden', message: expect.stringContaining('not an admin key') } });
      const viaQuery = await fetch(`${stack.apiUrl}${path}?key=${KEYS.tenant}`, { redirect: 'manual' });
      expect(viaQuery.status, path).toBe(403);
      expect(viaQuery.headers.get('set-cookie'), path).toBeNull();
    }
  });

  it('serves the page with a strict policy and its built script to an admin', async () => {
    const page = await fetch(`${stack.apiUrl}/admin/fleet`, { headers: ADMIN });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(page.headers.get('content-security-policy')).toMatch(/frame-ancestors 'none'/);
    expect(await page.text()).toContain('<script type="module" src="/admin/fleet/app.js">');
    const script = await fetch(`${stack.apiUrl}/admin/fleet/app.js`, { headers: ADMIN });
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await script.text()).toContain('/admin/fleet/events');
    // HEAD: the stream's headers, and an end.
    const head = await fetch(`${stack.apiUrl}/admin/fleet/events`, { method: 'HEAD', headers: ADMIN });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-type')).toMatch(/^text\/event-stream/);
  });

  it('lets a browser sign in with ?key= once, as Bull Board does: the key is traded for the session cookie, which the summary and stream accept', async () => {
    const visit = await fetch(`${stack.apiUrl}/admin/fleet?key=${KEYS.admin}`, { redirect: 'manual' });
    expect(visit.status).toBe(303);
    expect(visit.headers.get('location')).toBe('/admin/fleet');
    const cookie = { Cookie: visit.headers.get('set-cookie')!.split(';')[0]! };
    expect(cookie.Cookie).toMatch(/^switchyard_session=/);
    expect((await fetch(`${stack.apiUrl}/admin/fleet/summary`, { headers: cookie })).status).toBe(200);
    const stream = await fleetSummaries(stack.apiUrl, cookie);
    expect(stream.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect((await stream.next()).object).toBe('fleet_summary');
    stream.close();
    // The cookie is no key for the job API.
    expect((await fetch(`${stack.apiUrl}/v1/models`, { headers: cookie })).status).toBe(401);
  });

  it('shows each agent with its VRAM split by model, its loads and evictions with their reasons, the queues and refusals by reason', async () => {
    await runJob(stack, 'llama3.2:3b');
    await runJob(stack, 'llama3.1:8b');
    const unknown = await fetch(`${stack.apiUrl}/v1/jobs`, {
      method: 'POST',
      headers: { ...TENANT, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'no-such-model:1b', prompt: 'x' }),
    });
    expect(unknown.status).toBe(404);

    const stream = await fleetSummaries(stack.apiUrl, ADMIN);
    // The agent's heartbeat after the 8B's load: the summary shows it once that beat is read.
    const seen = await stream.next((s) => s.agents[0]?.models.some((model) => model.name === 'llama3.1:8b' && model.state === 'loaded') === true);
    stream.close();
    expect(seen.totals).toMatchObject({ agents: 1, by_state: { ready: 1, draining: 0, degraded: 0 }, slots: 1, vram_total_bytes: 10 * GB });
    const [agent] = seen.agents;
    expect(agent).toMatchObject({ id: 'agent-0', state: 'ready', backend: 'ollama', slots: 1 });
    expect(agent!.models.map((model) => model.name)).toEqual(['llama3.1:8b']);
    const segment = agent!.vram.segments.find((s) => s.model === 'llama3.1:8b')!;
    expect(segment).toMatchObject({ kind: 'model' });
    expect(segment.bytes).toBeGreaterThan(5 * GB);
    const segments = agent!.vram.segments.reduce((sum, s) => sum + s.bytes, 0);
    expect(segments + agent!.vram.free_bytes).toBe(agent!.vram.total_bytes);
    expect(agent!.gpus).toEqual([expect.objectContaining({ index: 0, total_bytes: 10 * GB })]);

    // Newest first: the 8B loaded after the 3B was evicted for it, and the 3B had loaded for its job.
    const lifecycle = seen.lifecycle.map(({ kind, model, reason, agent: on }) => ({ kind, model, reason, agent: on }));
    expect(lifecycle.slice(0, 3)).toEqual([
      { kind: 'loaded', model: 'llama3.1:8b', reason: expect.any(String), agent: 'agent-0' },
      { kind: 'unloaded', model: 'llama3.2:3b', reason: 'evicted for llama3.1:8b', agent: 'agent-0' },
      { kind: 'loaded', model: 'llama3.2:3b', reason: expect.any(String), agent: 'agent-0' },
    ]);
    expect(seen.lifecycle[0]!.seconds).toBeGreaterThanOrEqual(0);

    const models = new Map(seen.models.map((model) => [model.model, model]));
    expect(models.get('llama3.1:8b')).toMatchObject({ waiting: 0, active: 0, eta_s: 0, agents: ['agent-0'], loaded_on: ['agent-0'] });
    expect(models.get('llama3.1:8b')!.drain_rate_per_s).toBeGreaterThan(0);
    expect(seen.refusals.scope).toBe('replica');
    expect(seen.refusals.by_reason).toEqual([{ reason: 'model_not_found', count: 1, models: { unknown: 1 } }]);
    expect(seen.refusals.total).toBe(1);
  });

  it('counts a queue’s waiting jobs with their oldest wait and ETA', async () => {
    const hold = stack.hold({ prompt: 'held', afterTokens: 1 });
    const submit = async (prompt: string) =>
      fetch(`${stack.apiUrl}/v1/jobs`, {
        method: 'POST',
        headers: { ...TENANT, 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: 'llama3.1:8b', prompt, detach: true, options: { num_predict: 3 } }),
      });
    expect((await submit('held')).status).toBe(202);
    await hold.reached();
    // The agent's one slot is held: the next job waits.
    expect((await submit('waits')).status).toBe(202);
    const stream = await fleetSummaries(stack.apiUrl, ADMIN);
    // Queue counts and the agent's heartbeat move at their own times: wait for both.
    const seen = await stream.next(
      (s) => s.agents[0]?.in_flight === 1 && s.models.some((model) => model.model === 'llama3.1:8b' && model.waiting === 1 && model.active === 1),
    );
    const queue = seen.models.find((model) => model.model === 'llama3.1:8b')!;
    expect(queue.depth).toBe(1);
    expect(queue.oldest_wait_s).toBeGreaterThanOrEqual(0);
    // A drain rate was measured above, so admission estimates when the waiting job starts.
    expect(queue.eta_s).toEqual(expect.any(Number));
    expect(seen.totals.waiting).toBe(1);
    expect(seen.agents[0]!.in_flight).toBe(1);
    hold.release();
    await stream.next((s) => s.models.find((model) => model.model === 'llama3.1:8b')?.waiting === 0 && s.agents[0]?.in_flight === 0);
    stream.close();
  });

  it('pushes a new summary on the stream when an agent’s state changes (draining, then ready)', async () => {
    const stream = await fleetSummaries(stack.apiUrl, ADMIN);
    expect((await stream.next()).agents[0]!.state).toBe('ready');
    expect((await fetch(`${stack.apiUrl}/admin/agents/agent-0/drain`, { method: 'POST', headers: ADMIN })).status).toBe(202);
    const draining = await stream.next((s) => s.agents[0]?.state === 'draining');
    expect(draining.totals.by_state).toEqual({ ready: 0, draining: 1, degraded: 0 });
    expect((await fetch(`${stack.apiUrl}/admin/agents/agent-0/undrain`, { method: 'POST', headers: ADMIN })).status).toBe(202);
    await stream.next((s) => s.agents[0]?.state === 'ready');
    stream.close();
  });
});

describe('the fleet stream when Redis is away, and when the replica stops', () => {
  it('says the fleet cannot be read (event: error, the API’s error body) while Redis is cut off, sends summaries again once it is back, and ends when the replica stops', async () => {
    // The API reaches Redis through a gate the test closes; the agent talks to Redis directly.
    const gate = await startTcpGate(testRedis());
    const stack = await startStack({ api: { redisUrl: gate.url, adminApiKeys: KEYS.admin, fleetSummaryIntervalMs: 100 } });
    try {
      const stream = await fleetSummaries(stack.apiUrl, ADMIN);
      await stream.next((s) => s.agents.length === 1);
      gate.close();
      const error = await stream.nextError();
      expect(error).toEqual({ error: { code: 'redis_unavailable', message: expect.any(String), retry_after_s: 1 } });
      gate.open();
      await stream.next((s) => s.agents.length === 1);
      // A graceful stop ends the open stream rather than wait on it.
      const closed = stack.close();
      await stream.ended();
      await closed;
    } finally {
      await gate.stop();
    }
  }, 60_000);
});
