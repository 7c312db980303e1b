import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from './connection.js';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { closeRedis, createRedis } from './connection.js';
import { ReplicationBarrier } from './replication-barrier.js';

// The test run's Redis has no replica: WAIT 0 is met at once, WAIT 1 only by its timeout.
describe('ReplicationBarrier on a real Redis', () => {
  let redis: RedisConnection;
  let probe: RedisConnection;

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
    probe = createRedis(testRedis(), 'worker');
  });
  afterAll(async () => {
    await closeRedis(redis);
    await closeRedis(probe);
  });

  it('submits arriving while a round is out share the next round (group commit)', async () => {
    const key = `${uniquePrefix('barrier')}:probe`;
    const barrier = new ReplicationBarrier(redis, key, 0, 1_000);
    const answers = await Promise.all(Array.from({ length: 50 }, () => barrier.confirm()));
    expect(answers.every((acked) => acked === 0)).toBe(true);
    // The first caller's round went out alone; the 49 that came while it was out shared one more.
    expect(Number(await probe.get(key))).toBe(2);
  });

  it('answers how many replicas confirmed when fewer than asked for do within the timeout', async () => {
    const barrier = new ReplicationBarrier(redis, `${uniquePrefix('barrier')}:probe`, 1, 50);
    expect(await barrier.confirm()).toBe(0);
  });

  it('rejects when the round cannot be sent, and serves later callers again', async () => {
    const broken = createRedis(testRedis(), 'request', { retryStrategy: () => null });
    const barrier = new ReplicationBarrier(broken, `${uniquePrefix('barrier')}:probe`, 0, 50);
    broken.disconnect();
    await expect(barrier.confirm()).rejects.toThrow();
    await expect(barrier.confirm()).rejects.toThrow();
  });
});
