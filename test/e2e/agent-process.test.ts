/**
 * The built agent (apps/agent/dist/main.js) as a process, in the situations a first run
 * meets: a backend that is not there yet, a Redis that is not there, and Ctrl-C with a job
 * running. Simulator and API run in this process; only the agent is spawned.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createApi, parseConfig, type Api } from '@switchyard/api';
import { createGpuSim } from '@switchyard/gpu-sim';
import { freePort, testRedis, uniquePrefix } from '@switchyard/testing';
import { submitOnceServed } from '../support/client.js';
import { FAST_SIM } from '../support/stack.js';
import { logLines, runNode } from '../support/node-process.js';
import { REPO_ROOT, buildWorkspacePackages } from '../support/workspace-build.js';

const AGENT = join(REPO_ROOT, 'apps/agent/dist/main.js');
const MODEL = 'slow-model:1b';
const silent = pino({ level: 'silent' });

/** An agent tuned to notice things within a fraction of a second, logging JSON at info. */
function agentEnv(extra: Record<string, string>): Record<string, string> {
  return {
    REDIS_PREFIX: uniquePrefix('agent-process'),
    AGENT_ID: uniquePrefix('agent'),
    LOG_LEVEL: 'info',
    HEARTBEAT_INTERVAL_MS: '200',
    HEARTBEAT_TTL_MS: '1000',
    INVENTORY_REFRESH_MS: '200',
    SWEEP_INTERVAL_MS: '100',
    PLACEMENT_INTERVAL_MS: '100',
    BACKEND_NUM_PARALLEL: '4',
    ...extra,
  };
}

describe.concurrent('the agent process', () => {
  beforeAll(() => buildWorkspacePackages('@switchyard/agent...'), 120_000);

  it('warns once, naming OLLAMA_URL, when its backend does not answer, and serves it once it comes up', async ({ expect, onTestFinished }) => {
    const port = await freePort();
    const agent = runNode(AGENT, agentEnv({ REDIS_URL: testRedis(), OLLAMA_URL: `http://127.0.0.1:${port}` }));
    onTestFinished(() => agent.kill('SIGKILL'));
    await agent.line('stdout', /does not answer/);
    await agent.line('stdout', /"msg":"agent ready"/);
    // An Ollama started after the agent: the agent keeps asking and finds it.
    const sim = await createGpuSim({ ...FAST_SIM, port, models: [{ name: MODEL, size_bytes: 1e8 }] }, { logger: silent });
    onTestFinished(() => sim.close());
    await agent.line('stdout', /"msg":"backend reachable"/);
    const warnings = logLines(agent.output().stdout, /does not answer/);
    expect(warnings.map((entry) => [entry.level, entry.msg])).toEqual([
      [40, `backend at http://127.0.0.1:${port} does not answer (ECONNREFUSED): start Ollama there or set OLLAMA_URL to where it listens; retrying every 0.2 s`],
    ]);
    agent.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
  });

  it('says it cannot reach Redis in one line naming REDIS_URL, not one per reconnect, and stops at once on SIGTERM', async ({ expect, onTestFinished }) => {
    const sim = await createGpuSim({ ...FAST_SIM, models: [{ name: MODEL, size_bytes: 1e8 }] }, { logger: silent });
    onTestFinished(() => sim.close());
    const agent = runNode(AGENT, agentEnv({ REDIS_URL: 'redis://127.0.0.1:1', BACKEND_URL: sim.url }));
    onTestFinished(() => agent.kill('SIGKILL'));
    await agent.line('stdout', /cannot reach Redis/);
    agent.kill('SIGTERM');
    const exit = await agent.exited;
    expect(exit.code).toBe(0);
    // Its connections (commands, subscriber, one per model worker) each fail and retry;
    // one throttle over all of them reports the outage once.
    expect(logLines(exit.stdout, /Redis/).map((entry) => entry.msg)).toEqual(['cannot reach Redis at redis://127.0.0.1:1: ECONNREFUSED — start Redis or set REDIS_URL']);
  });

  describe('with a job running when SIGTERM comes', () => {
    let api: Api;
    let apiUrl: string;
    const prefix = uniquePrefix('agent-process');
    beforeAll(async () => {
      api = await createApi(parseConfig({ redisUrl: testRedis(), redisPrefix: prefix, host: '127.0.0.1', port: 0, fleetCacheMs: 50 }), { logger: silent });
      apiUrl = await api.listen();
    });
    afterAll(() => api?.close());

    it('stops within its drain deadline, hands the job back to its queue and exits 0', async ({ expect, onTestFinished }) => {
      // Two tokens a second in real time: the job's 1,000 tokens keep it running far past the test.
      const sim = await createGpuSim({ ...FAST_SIM, time_scale: 1, tokens_per_s: 2, load_overhead_ms: 0, models: [{ name: MODEL, size_bytes: 1e8 }] }, { logger: silent });
      onTestFinished(() => sim.close());
      const agent = runNode(AGENT, agentEnv({ REDIS_URL: testRedis(), REDIS_PREFIX: prefix, BACKEND_URL: sim.url, AGENT_DRAIN_TIMEOUT_MS: '1000' }));
      onTestFinished(() => agent.kill('SIGKILL'));
      await agent.line('stdout', /"msg":"agent ready"/);

      // Accepted once the API has the agent's first heartbeat (it lists the model).
      const id = await submitOnceServed(apiUrl, { model: MODEL, prompt: 'a long answer', options: { num_predict: 1_000 } });
      // Running: the agent streams its tokens (it wrote `started`).
      await expect.poll(async () => ((await (await fetch(`${apiUrl}/v1/jobs/${id}`)).json()) as { status: string }).status, { timeout: 10_000 }).toBe('running');

      const signalled = Date.now();
      agent.kill('SIGTERM');
      const exit = await agent.exited;
      expect(exit.code).toBe(0);
      // It gave the job its 1 s, then handed it back (room left for a loaded machine); without
      // the deadline it would wait for the held job forever.
      expect(exit.at - signalled).toBeGreaterThanOrEqual(1_000);
      expect(exit.at - signalled).toBeLessThan(6_000);
      expect(logLines(exit.stdout, /drain deadline/).map((entry) => entry.msg)).toEqual([
        'drain deadline of 1000 ms (AGENT_DRAIN_TIMEOUT_MS) passed with 1 job(s) running: handed 1 back to their queues; exiting',
      ]);
      // Back in its queue for another agent, not failed and not waiting for a lock to expire.
      const record = (await (await fetch(`${apiUrl}/v1/jobs/${id}`)).json()) as { status: string };
      expect(record.status).toBe('queued');
    });
  });
});
