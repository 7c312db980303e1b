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
});
