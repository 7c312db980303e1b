import type { RedisConnection } from '@switchyard/redis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinnedQueueModel, redisKeys } from '@switchyard/protocol';
import { closeRedis, createRedis } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import type { ModelState } from './model-inventory.js';
import { WorkerSet } from './worker-set.js';

/** What the fake inventory offers: model name → digest. */
let offered = new Map<string, string>();
const inventory = {
  models: () => [...offered.keys()],
  get: (model: string) => (offered.has(model) ? ({ name: model, digest: offered.get(model)! } as ModelState) : undefined),
};

describe('the worker set on a real Redis', () => {
  let redis: RedisConnection;
  let workers: WorkerSet;

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
    workers = new WorkerSet({
      redis,
      bullPrefix: redisKeys(uniquePrefix('workers')).bullPrefix,
      processor: async () => ({}) as never,
      inventory,
      lockDurationMs: 15_000,
      stalledIntervalMs: 5_000,
      reportRedis: () => () => undefined,
      logger: pino({ level: 'silent' }),
    });
  });

  afterAll(async () => {
    await workers.close();
    await closeRedis(redis);
  });

  it('feeds a model from its plain and its digest-pinned queue; a model it does not know, from the plain one', () => {
    offered = new Map([['m', 'sha256:1']]);
    expect(workers.queueKeysOf('m')).toEqual(['m', pinnedQueueModel('m', 'sha256:1')]);
    expect(workers.queueKeysOf('other')).toEqual(['other']);
  });

  it('opens a worker for every queue of the offered models and closes those of a model gone', async () => {
    offered = new Map([
      ['a', 'sha256:a'],
      ['b', 'sha256:b'],
    ]);
    await workers.sync();
    expect([...workers.workers.keys()].sort()).toEqual(['a', 'b', pinnedQueueModel('a', 'sha256:a'), pinnedQueueModel('b', 'sha256:b')].sort());
    const kept = workers.workers.get('a');
    offered.delete('b');
    await workers.sync();
    expect([...workers.workers.keys()].sort()).toEqual(['a', pinnedQueueModel('a', 'sha256:a')].sort());
    // A worker already open stays the same one.
    expect(workers.workers.get('a')).toBe(kept);
  });

  it('cancels nothing that does not run here', () => {
    expect(workers.cancelJob('a', 'no-such-job', 'client')).toEqual([]);
  });
});
