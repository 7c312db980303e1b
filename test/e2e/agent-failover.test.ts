/**
 * Failover when an agent stops beating, with the fault injected at a known point: the agent
 * running a job is paused (SIGSTOP) while its generation is held after one token. The API's
 * maintenance sees the heartbeat lapse and puts the job back in its queue; another agent runs
 * it; then the paused agent is resumed (SIGCONT) and its backend answer released: everything
 * it still writes is refused (fenced), it aborts its backend request, and the job ends once.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, parseConfig, type Api } from '@switchyard/api';
import { createGpuSim, type GpuSim } from '@switchyard/gpu-sim';
import { redisKeys, type StreamEvent } from '@switchyard/protocol';
import { EventLog } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { submitOnceServed } from '../support/client.js';
import { FAST_SIM } from '../support/stack.js';
import { runNode, type NodeProcess } from '../support/node-process.js';
import { REPO_ROOT, buildWorkspacePackages } from '../support/workspace-build.js';

const AGENT = join(REPO_ROOT, 'apps/agent/dist/main.js');
const MODEL = 'failover-model:1b';
const silent = pino({ level: 'silent' });
const LAPSE_MS = 1_000;

describe('an agent that stops beating mid-job', () => {
  const prefix = uniquePrefix('failover');
  let api: Api;
  let apiUrl: string;
  let redis: Redis;
  const sims: GpuSim[] = [];
  const agents: NodeProcess[] = [];

  beforeAll(async () => {
    await buildWorkspacePackages('@switchyard/agent...');
    redis = new Redis(testRedis());
    api = await createApi(
      parseConfig({ redisUrl: testRedis(), redisPrefix: prefix, host: '127.0.0.1', port: 0, fleetCacheMs: 50, maintenanceIntervalMs: 100, agentLapseMs: LAPSE_MS }),
      { logger: silent },
    );
    apiUrl = await api.listen();
  }, 120_000);
  afterAll(async () => {
    for (const agent of agents) {
      agent.kill('SIGCONT');
      agent.kill('SIGKILL');
    }
    await Promise.all(sims.map((sim) => sim.close()));
    await api?.close();
    redis?.disconnect();
  });

  async function startAgent(id: string): Promise<{ agent: NodeProcess; sim: GpuSim }> {
    const sim = await createGpuSim({ ...FAST_SIM, models: [{ name: MODEL, size_bytes: 1e8 }] }, { logger: silent });
    sims.push(sim);
    const agent = runNode(
      AGENT,
      {
        REDIS_URL: testRedis(),
        REDIS_PREFIX: prefix,
        AGENT_ID: id,
        BACKEND_URL: sim.url,
        LOG_LEVEL: 'info',
        HEARTBEAT_INTERVAL_MS: '200',
        HEARTBEAT_TTL_MS: '1000',
        INVENTORY_REFRESH_MS: '200',
        SWEEP_INTERVAL_MS: '100',
        PLACEMENT_INTERVAL_MS: '100',
        BACKEND_NUM_PARALLEL: '2',
        TOKEN_COALESCE_MS: '0',
      },
      60_000,
    );
    agents.push(agent);
    await agent.line('stdout', /"msg":"agent ready"/);
    return { agent, sim };
  }

  const events = (jobId: string): Promise<StreamEvent[]> => new EventLog(redis, redisKeys(prefix)).readAfter(jobId, 0);
  const activeRequests = async (sim: GpuSim) => ((await (await fetch(`${sim.url}/sim/stats`)).json()) as { active_requests: number }).active_requests;

  it('moves its job to another agent within a few seconds, fences the paused one off, and the job ends once', async () => {
    const first = await startAgent('agent-paused');
    // Held after its first token on the first agent's simulator (only there: the second has no hold).
    const hold = first.sim.hold({ prompt: 'fail me over', afterTokens: 1 });
    const id = await submitOnceServed(apiUrl, { model: MODEL, prompt: 'fail me over', detach: true, options: { num_predict: 12 } });
    await expect.poll(() => hold.paused, { timeout: 10_000 }).toBe(1);
    await expect.poll(async () => (await events(id)).map((event) => event.type), { timeout: 10_000 }).toEqual(['queued', 'started', 'token']);
    const second = await startAgent('agent-healthy');

    const paused = Date.now();
    first.agent.kill('SIGSTOP');
    // The retry continues the streamed text (`resumed`, the default; `restarted` with on_restart: restart).
    await expect.poll(async () => (await events(id)).some((event) => event.type === 'resumed'), { timeout: 10_000, interval: 50 }).toBe(true);
    const failoverMs = Date.now() - paused;
    // The lapse (1 s here; 3.5 s by default) plus a maintenance round and a claim, far under BullMQ's 15 s lock.
    expect(failoverMs).toBeLessThan(LAPSE_MS + 3_000);
    await expect.poll(async () => (await events(id)).at(-1)?.type, { timeout: 10_000 }).toBe('done');
    const ended = await events(id);

    // The paused agent comes back and its backend answer resumes: it may write nothing more.
    first.agent.kill('SIGCONT');
    hold.release();
    await expect.poll(() => activeRequests(first.sim), { timeout: 10_000 }).toBe(0);
    await first.agent.line('stdout', /job write refused: this attempt no longer holds the job/);
    expect(await events(id)).toEqual(ended);

    const types = ended.map((event) => event.type);
    expect(types.filter((type) => type === 'done')).toHaveLength(1);
    const restartedAt = types.indexOf('resumed');
    expect(types.slice(0, restartedAt)).toEqual(['queued', 'started', 'token']);
    expect(ended.slice(restartedAt + 1).find((event) => event.type === 'started')).toMatchObject({ agent: 'agent-healthy' });
    const record = (await (await fetch(`${apiUrl}/v1/jobs/${id}`)).json()) as { status: string; agent?: string };
    expect(record).toMatchObject({ status: 'completed', agent: 'agent-healthy' });
    expect(await activeRequests(second.sim)).toBe(0);
  }, 60_000);
});
