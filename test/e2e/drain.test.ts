/**
 * Draining without losing work: an operator's drain of an agent (it claims nothing, its
 * running job finishes, undrain brings it back), and an API replica that stops (readiness
 * fails first, its SSE streams end with a reconnect hint, and a client resuming with
 * Last-Event-ID misses nothing).
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, parseConfig } from '@switchyard/api';
import { startStack, type Stack } from '../support/stack.js';

const MODEL = 'llama3.2:3b';
const ADMIN = 'admin-key-drain-0123456789';

describe('drains', () => {
  let stack: Stack;
  let redis: Redis;
  const admin = { Authorization: `Bearer ${ADMIN}` };
  beforeAll(async () => {
    stack = await startStack({ api: { adminApiKeys: ADMIN, apiKeys: `acme:${ADMIN}-tenant` } });
    redis = new Redis(stack.redisUrl);
  });
  afterAll(async () => {
    redis?.disconnect();
    await stack?.close();
  });
  const tenant = { Authorization: `Bearer ${ADMIN}-tenant` };
  const submit = (body: unknown) =>
    fetch(`${stack.apiUrl}/v1/jobs`, { method: 'POST', headers: { ...tenant, 'Content-Type': 'application/json' }, body: JSON.stringify(body) }).then(async (response) => ({
      status: response.status,
      json: (await response.json()) as { id: string },
    }));
  const fleetSummary = async () => (await (await fetch(`${stack.apiUrl}/admin/fleet/summary`, { headers: admin })).json()) as { agents: Array<{ id: string; state: string }> };
  const statusOf = async (id: string) => ((await (await fetch(`${stack.apiUrl}/v1/jobs/${id}`, { headers: tenant })).json()) as { status: string }).status;

  it('drains an agent for maintenance: its running jobs finish, it claims nothing until undrained, submits meanwhile get 503 with Retry-After', async () => {
    const agent = stack.agents[0]!;
    const slots = agent.heartbeat().slots;
    // Every slot busy with a held job, so the next job is queued whatever the agent does.
    const hold = stack.hold({ prompt: 'finish me while drained', afterTokens: 1 });
    const running = [];
    for (let i = 0; i < slots; i++) running.push(await submit({ model: MODEL, prompt: 'finish me while drained', detach: true, options: { num_predict: 6 } }));
    expect(running.map((job) => job.status)).toEqual(running.map(() => 202));
    await hold.reached(slots);
    const waiting = await submit({ model: MODEL, prompt: 'wait for the undrain', detach: true, options: { num_predict: 3 } });
    expect(waiting.status).toBe(202);
    expect(await statusOf(waiting.json.id)).toBe('queued');

    const drained = await fetch(`${stack.apiUrl}/admin/agents/${agent.id}/drain`, { method: 'POST', headers: admin });
    try {
      expect(drained.status).toBe(202);
      expect(await drained.json()).toMatchObject({ id: agent.id, action: 'drain' });
      // The agent hears the drain on its control channel, which may come after the 202.
      await expect.poll(() => agent.heartbeat().state, { timeout: 5_000 }).toBe('draining');

      // Once the API reads the draining heartbeat, a submit is refused: come back, not lost in a queue nobody serves.
      await expect.poll(async () => (await fleetSummary()).agents.find((row) => row.id === agent.id)?.state, { timeout: 5_000 }).toBe('draining');
      const refused = await fetch(`${stack.apiUrl}/v1/jobs`, {
        method: 'POST',
        headers: { ...tenant, 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt: 'refused while drained' }),
      });
      expect(refused.status).toBe(503);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await refused.json()).toMatchObject({ error: { code: 'no_capacity', message: expect.stringContaining('draining') } });

      // The running ones finish; the queued one is not claimed.
      hold.release();
      for (const job of running) await expect.poll(() => statusOf(job.json.id), { timeout: 10_000 }).toBe('completed');
      expect(await statusOf(waiting.json.id)).toBe('queued');
    } finally {
      hold.release();
      const undrained = await fetch(`${stack.apiUrl}/admin/agents/${agent.id}/undrain`, { method: 'POST', headers: admin });
      expect(undrained.status).toBe(202);
    }
    await expect.poll(() => statusOf(waiting.json.id), { timeout: 10_000 }).toBe('completed');
    expect(agent.heartbeat().state).toBe('ready');

    // Admin only, and only agents the fleet lists.
    expect((await fetch(`${stack.apiUrl}/admin/agents/${agent.id}/drain`, { method: 'POST', headers: tenant })).status).toBe(403);
    const unknown = await fetch(`${stack.apiUrl}/admin/agents/no-such-agent/drain`, { method: 'POST', headers: admin });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: 'agent_not_found' } });
  });

  it('stops an API replica without losing a stream: readiness fails first, streams end with a retry hint, a resume elsewhere gets the rest', async () => {
    // A second replica on the same Redis and prefix: the one that stops.
    const replica = await createApi(
      parseConfig({ redisUrl: stack.redisUrl, redisPrefix: stack.prefix, host: '127.0.0.1', port: 0, adminApiKeys: ADMIN, apiKeys: `acme:${ADMIN}-tenant` }),
      { logger: stack.logger },
    );
    const replicaUrl = await replica.listen();
    try {
      const hold = stack.hold({ prompt: 'outlive the replica', afterTokens: 1 });
      const job = await submit({ model: MODEL, prompt: 'outlive the replica', options: { num_predict: 5 } });
      const response = await fetch(`${replicaUrl}/v1/jobs/${job.json.id}/events`, { headers: tenant });
      expect(response.status).toBe(200);
      await hold.reached();
      const drained = replica.drain(0);
      expect((await fetch(`${replicaUrl}/readyz`)).status).toBe(503);
      expect(await drained).toBe(1);
      const text = await response.text();
      expect(text).toMatch(/\nretry: 100\n\n$/);
      const lastId = Math.max(...[...text.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1])));

      // The client reconnects (to the replica still up) with Last-Event-ID: the rest, nothing twice.
      hold.release();
      const resumed = await (await fetch(`${stack.apiUrl}/v1/jobs/${job.json.id}/events`, { headers: { ...tenant, 'Last-Event-ID': String(lastId) } })).text();
      const ids = [...resumed.matchAll(/^id: (\d+)$/gm)].map((match) => Number(match[1]));
      expect(ids[0]).toBe(lastId + 1);
      expect(resumed).toMatch(/event: done/);
      expect(await statusOf(job.json.id)).toBe('completed');
    } finally {
      await replica.close();
    }
  });
});
