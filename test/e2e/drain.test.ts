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
  const statusOf = async (id: string) => ((await (await fetch(`${stack.apiUrl}/v1/jobs/${id}`, { headers: tenant })).json()) as { status: string }).status;

  it('drains an agent for maintenance: its running job finishes, it claims nothing until undrained', async () => {
    const agent = stack.agents[0]!;
    const hold = stack.hold({ prompt: 'finish me while drained', afterTokens: 1 });
    const running = await submit({ model: MODEL, prompt: 'finish me while drained', detach: true, options: { num_predict: 6 } });
    expect(running.status).toBe(202);
    await hold.reached();

    const drained = await fetch(`${stack.apiUrl}/admin/agents/${agent.id}/drain`, { method: 'POST', headers: admin });
    expect(drained.status).toBe(202);
    expect(await drained.json()).toMatchObject({ id: agent.id, action: 'drain' });
    await expect.poll(() => agent.heartbeat().state, { timeout: 5_000 }).toBe('draining');

    // Submitted while drained: waits (the only agent takes nothing new); the running one finishes.
    const waiting = await submit({ model: MODEL, prompt: 'wait for the undrain', detach: true, options: { num_predict: 3 } });
    hold.release();
    await expect.poll(() => statusOf(running.json.id), { timeout: 10_000 }).toBe('completed');
    expect(await statusOf(waiting.json.id)).toBe('queued');

    const undrained = await fetch(`${stack.apiUrl}/admin/agents/${agent.id}/undrain`, { method: 'POST', headers: admin });
    expect(undrained.status).toBe(202);
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
