/**
 * An agent's own HTTP port (apps/agent/src/agent-http.ts) on the real path: a real Redis, a
 * gpu-sim over HTTP, a job through the API. /readyz follows the backend; /metrics counts
 * the claim, the job and the load it took.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig as parseAgentConfig, startAgent } from '@switchyard/agent';
import { createGpuSim } from '@switchyard/gpu-sim';
import { freePort, testRedis, uniquePrefix } from '@switchyard/testing';
import { jobStatus, submitJob } from '../support/client.js';
import { FAST_SIM, startStack, type Stack } from '../support/stack.js';

const MODEL = 'qwen2.5:0.5b';

/** One series' value in a Prometheus text page: the sum of every line of `name` carrying all of `labels`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-z_]+)="([^"]*)"/g)].map((pair) => [pair[1], pair[2]]));
    if (Object.entries(labels).every(([key, value]) => present[key] === value)) sum += Number(match[3]);
  }
  return sum;
}

async function readyz(url: string): Promise<{ status: number; body: Record<string, any> }> {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: (await response.json()) as Record<string, any> };
}

describe('the agent over HTTP', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack?.close());

  it('is live and ready, and its metrics count the claim, the job and the load it took', async () => {
    const agent = stack.agents[0]!;
    expect((await fetch(`${agent.httpUrl}/healthz`)).status).toBe(200);
    expect(await readyz(agent.httpUrl)).toEqual({
      status: 200,
      body: { status: 'ready', agent: agent.id, checks: { agent: 'ok', redis: 'ok', backend: 'ok', inventory: 'ok' } },
    });

    const job = await submitJob(stack, { model: MODEL, prompt: 'count me', options: { num_predict: 3 } });
    await expect.poll(() => jobStatus(stack, job.id), { timeout: 10_000 }).toBe('completed');
    // The job's end is written before BullMQ's move, which the processor's return comes after.
    await expect.poll(async () => sample(await (await fetch(`${agent.httpUrl}/metrics`)).text(), 'switchyard_agent_jobs_finished_total'), { timeout: 5_000 }).toBe(1);

    const response = await fetch(`${agent.httpUrl}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(sample(text, 'switchyard_agent_claims_total', { queue: MODEL })).toBe(1);
    expect(sample(text, 'switchyard_agent_jobs_finished_total', { model: MODEL, outcome: 'completed' })).toBe(1);
    // Nobody had the model loaded and a job waited: the load that served it.
    expect(sample(text, 'switchyard_agent_model_loads_total', { model: MODEL, reason: 'no_copy', outcome: 'loaded' })).toBe(1);
    expect(sample(text, 'switchyard_agent_model_load_seconds_count', { model: MODEL })).toBe(1);
    expect(sample(text, 'switchyard_agent_model_load_seconds_sum', { model: MODEL })).toBeGreaterThan(0);
    expect(sample(text, 'switchyard_agent_placement_round_seconds_count')).toBeGreaterThan(0);
    expect(sample(text, 'switchyard_agent_backend_errors_total')).toBe(0);
    expect(sample(text, 'switchyard_agent_models_loaded')).toBe(1);
    expect(sample(text, 'switchyard_agent_slots')).toBe(4);
    for (const name of ['switchyard_agent_model_unloads_total', 'switchyard_agent_warm_lease_waits_total', 'switchyard_agent_process_cpu_user_seconds_total']) {
      expect(text).toContain(`# HELP ${name} `);
    }
  });

  it('is not ready, naming the backend, once its simulator stops, and ready again when one answers there', async () => {
    const sim = await createGpuSim({ ...FAST_SIM, models: [{ name: 'stop-model:1b', size_bytes: 1e8 }] }, { logger: stack.logger });
    stack.sims.push(sim);
    const agent = await stack.addAgent(stack.sims.length - 1);
    await expect.poll(async () => (await readyz(agent.httpUrl)).status, { timeout: 5_000 }).toBe(200);

    await sim.close();
    // The next model-list read (every 500 ms here) finds nobody.
    await expect.poll(async () => (await readyz(agent.httpUrl)).status, { timeout: 5_000 }).toBe(503);
    const { body } = await readyz(agent.httpUrl);
    expect(body).toMatchObject({ status: 'not_ready', not_ready: ['backend'], checks: { redis: 'ok', backend: 'unreachable (ECONNREFUSED)', inventory: 'ok', agent: 'ok' } });
    expect((await fetch(`${agent.httpUrl}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${agent.httpUrl}/metrics`)).text();
    expect(sample(metrics, 'switchyard_agent_backend_errors_total', { operation: 'listModels', code: 'unavailable' })).toBeGreaterThan(0);

    const back = await createGpuSim({ ...FAST_SIM, port: sim.port, models: [{ name: 'stop-model:1b', size_bytes: 1e8 }] }, { logger: stack.logger });
    stack.sims.push(back);
    await expect.poll(async () => (await readyz(agent.httpUrl)).status, { timeout: 5_000 }).toBe(200);
  });

  it('is never ready when started against a port where nothing listens, and says why', async () => {
    const port = await freePort();
    const agent = await startAgent(
      parseAgentConfig({
        redisUrl: testRedis(),
        redisPrefix: uniquePrefix('agent-http'),
        backendUrl: `http://127.0.0.1:${port}`,
        agentId: uniquePrefix('agent'),
        inventoryRefreshMs: 200,
      }),
      { logger: stack.logger },
    );
    try {
      expect(await readyz(agent.httpUrl)).toEqual({
        status: 503,
        body: {
          status: 'not_ready',
          agent: agent.id,
          not_ready: ['backend', 'inventory'],
          checks: { agent: 'ok', redis: 'ok', backend: 'unreachable (ECONNREFUSED)', inventory: 'not read yet' },
        },
      });
    } finally {
      await agent.close();
    }
    // Closed with the agent.
    await expect(fetch(`${agent.httpUrl}/healthz`)).rejects.toThrow();
  });
});
