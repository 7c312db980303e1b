/**
 * A backend that dies mid-job, with the fault injected at a known point: the job's
 * generation is held after its first token on whichever simulator got it, and that
 * simulator is then stopped. The job is restarted on the other node (not failed), the agent
 * of the dead backend reports `degraded` and claims nothing, and once a backend answers on
 * its address again the agent is `ready` with a fresh view of what is loaded.
 */
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGpuSim, type Hold } from '@switchyard/gpu-sim';
import { redisKeys } from '@switchyard/protocol';
import { EventLog } from '@switchyard/redis';
import { FAST_SIM, startStack, type Stack } from '../support/stack.js';
import { jobStatus, submitJob } from '../support/client.js';

const MODEL = 'llama3.2:3b';

describe('a backend that dies mid-job', () => {
  let stack: Stack;
  let redis: Redis;
  beforeAll(async () => {
    stack = await startStack({ nodes: [{}, {}] });
    redis = new Redis(stack.redisUrl);
  });
  afterAll(async () => {
    redis?.disconnect();
    await stack?.close();
  });

  it('restarts the job on another node, and its agent is degraded until the backend answers again', async () => {
    const holds: Hold[] = stack.sims.map((sim) => sim.hold({ prompt: 'outlive your backend', afterTokens: 1 }));
    const job = await submitJob(stack, { model: MODEL, prompt: 'outlive your backend', detach: true, options: { num_predict: 8 } });
    await expect.poll(() => holds.findIndex((hold) => hold.paused > 0), { timeout: 15_000 }).not.toBe(-1);
    const victim = holds.findIndex((hold) => hold.paused > 0);
    const survivor = 1 - victim;
    // The other node runs the restarted job to its end.
    holds[survivor]!.release();
    const deadUrl = new URL(stack.sims[victim]!.url);
    await stack.sims[victim]!.close();

    await expect.poll(() => jobStatus(stack, job.id), { timeout: 15_000 }).toBe('completed');
    const types = (await new EventLog(redis, redisKeys(stack.prefix)).readAfter(job.id, 0)).map((event) => event.type);
    expect(types.slice(0, 3)).toEqual(['queued', 'started', 'token']);
    // Restarted elsewhere, continuing the text already streamed.
    expect(types).toContain('resumed');
    expect(types.filter((type) => type === 'done')).toHaveLength(1);
    expect(types).not.toContain('error');
    const record = (await (await fetch(`${stack.apiUrl}/v1/jobs/${job.id}`)).json()) as { agent: string };
    expect(record.agent).toBe(stack.agents[survivor]!.id);

    await expect.poll(() => stack.agents[victim]!.heartbeat().state, { timeout: 10_000 }).toBe('degraded');
    // A backend on that address again (a restarted Ollama: nothing loaded): ready once it answers.
    const revived = await createGpuSim({ ...FAST_SIM, port: Number(deadUrl.port) }, { logger: pino({ level: 'silent' }) });
    try {
      await expect.poll(() => stack.agents[victim]!.heartbeat().state, { timeout: 10_000 }).toBe('ready');
      expect(stack.agents[victim]!.heartbeat().models_loaded).toEqual([]);
    } finally {
      await revived.close();
    }
  }, 60_000);

  it('treats a backend that hangs without closing as dead: after BACKEND_STALL_MS of silence mid-answer the job continues on another node', async () => {
    const hung = await startStack({ nodes: [{ agent: { backendStallMs: 500 } }, {}] });
    try {
      const admin = (id: string, action: 'drain' | 'undrain') => fetch(`${hung.apiUrl}/admin/agents/${id}/${action}`, { method: 'POST' });
      const [first, second] = hung.agents as [RunningAgentLike, RunningAgentLike];
      // The job must start on the first node: the second takes nothing yet.
      await admin(second.id, 'drain');
      await expect.poll(() => second.heartbeat().state, { timeout: 5_000 }).toBe('draining');
      // The first node's simulator stops sending after one token and never closes: a hung backend.
      const hold = hung.sims[0]!.hold({ prompt: 'hang on me', afterTokens: 1 });
      const started = Date.now();
      const job = await submitJob(hung, { model: MODEL, messages: [{ role: 'user', content: 'hang on me' }], detach: true, options: { seed: 3, num_predict: 10 } });
      await hold.reached();
      await admin(first.id, 'drain');
      await admin(second.id, 'undrain');
      await expect.poll(() => jobStatus(hung, job.id), { timeout: 15_000 }).toBe('completed');
      // Well under the 2-minute default silence a hung runner used to be given.
      expect(Date.now() - started).toBeLessThan(10_000);
      const types = (await new EventLog(redis, redisKeys(hung.prefix)).readAfter(job.id, 0)).map((event) => event.type);
      expect(types).toContain('resumed');
      expect(types).not.toContain('error');
      const record = (await (await fetch(`${hung.apiUrl}/v1/jobs/${job.id}`)).json()) as { agent: string };
      expect(record.agent).toBe(second.id);
      hold.release();
    } finally {
      await hung.close();
    }
  }, 60_000);
});

type RunningAgentLike = Stack['agents'][number];
