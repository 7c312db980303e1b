import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { MODEL, REAL_TIME_SIM, call, post, sleep } from './backpressure-support.js';

/** About 100 ms of work at time_scale 1 (22 tokens at 220 per second). */
const JOB = { model: MODEL, prompt: 'drain', options: { num_predict: 22 } };
const DEPTH = 2;

describe('Retry-After follows the measured drain rate', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      nodes: [{ sim: REAL_TIME_SIM, agent: { slots: 1 } }],
      // Open mode; a short drain window so the rate follows a change within seconds.
      api: { queueDepthLimit: DEPTH, drainWindowSeconds: 3 },
    });
  });
  afterAll(() => stack?.close());

  const queueOf = async () => (await call(stack, '/v1/models')).json.data.find((entry: any) => entry.id === MODEL).queue;

  /** Keeps the queue at its depth limit (without being refused itself) for `ms`, so the model drains at capacity. */
  async function keepBusy(ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if ((await queueOf()).depth < DEPTH) await post(stack, JOB, 'nobody');
      else await sleep(20);
    }
  }

  /** A refusal while the queue is full: its exact Retry-After in ms, and the whole seconds. */
  async function probe(): Promise<{ ms: number; seconds: number; body: any }> {
    for (let attempt = 0; attempt < 50; attempt++) {
      while ((await queueOf()).depth < DEPTH) await post(stack, JOB, 'nobody');
      const answer = await post(stack, JOB, 'nobody');
      if (answer.status === 429) {
        expect(answer.json.error.code).toBe('queue_full');
        expect(answer.headers.get('x-queue-depth')).toBe(String(DEPTH));
        return { ms: Number(answer.headers.get('retry-after-ms')), seconds: Number(answer.headers.get('retry-after')), body: answer.json };
      }
    }
    throw new Error('the queue never refused');
  }

  it('grows when the simulator slows down', async () => {
    await keepBusy(2_500);
    const fastRate = (await queueOf()).drain_rate_per_s;
    const fast = await probe();

    // Every delay of the simulator 20× longer from the next request on: about 2 s per job.
    stack.sims[0]!.config.time_scale = 20;
    try {
      await keepBusy(5_500);
      const slow = await probe();
      const queue = await queueOf();
      expect(queue.drain_rate_per_s).toBeLessThan(fastRate / 3);
      expect(queue.oldest_wait_s).toBeGreaterThan(0);
      const seen = JSON.stringify({ fast, slow, fastRate, slowRate: queue.drain_rate_per_s });
      expect(slow.ms, seen).toBeGreaterThan(4 * fast.ms);
      expect(slow.seconds, seen).toBeGreaterThan(fast.seconds);
      expect(slow.body.error.retry_after_s).toBe(slow.seconds);
      // And it says what the rate implies: one job must start, at about 2 s per job.
      expect(slow.ms, seen).toBeGreaterThan(1_000);
      expect(slow.ms, seen).toBeLessThan(5_000);
    } finally {
      stack.sims[0]!.config.time_scale = 1;
    }
  });
});
