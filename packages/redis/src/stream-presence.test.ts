import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { redisKeys } from '@switchyard/protocol';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { closeRedis, createRedis, type RedisConnection } from './connection.js';
import { StreamPresence, STREAM_PRESENCE_TTL_MS } from './stream-presence.js';

describe('StreamPresence: which jobs some replica streams', () => {
  let redis: RedisConnection;
  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
  });
  afterAll(() => closeRedis(redis));

  it('marks a held job with a short TTL, counts holds of one job, and tells marked jobs apart from others', async () => {
    const keys = redisKeys(uniquePrefix('presence'));
    const here = new StreamPresence(redis, keys);
    const elsewhere = new StreamPresence(redis, keys);
    try {
      const first = await here.hold('a');
      const second = await here.hold('a');
      await elsewhere.hold('b');
      expect(here.count).toBe(1);
      const ttl = await redis.pttl(keys.jobStreamed('a'));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(STREAM_PRESENCE_TTL_MS);
      // Any replica's marks count, and only marked jobs.
      expect([...(await here.streamed(['a', 'b', 'c']))].sort()).toEqual(['a', 'b']);

      first();
      first(); // releasing twice is one release
      expect(here.count).toBe(1);
      second();
      expect(here.count).toBe(0);
      // Not deleted: another replica may renew the same mark; it lapses by itself.
      expect(await redis.exists(keys.jobStreamed('a'))).toBe(1);
    } finally {
      here.close();
      elsewhere.close();
    }
  });

  it('renews the marks of held jobs until released', async () => {
    const keys = redisKeys(uniquePrefix('presence'));
    // A TTL far longer than the renewal: the renewal shows as the TTL going back up.
    const presence = new StreamPresence(redis, keys, 60_000, 20);
    try {
      const release = await presence.hold('job');
      await redis.pexpire(keys.jobStreamed('job'), 10_000);
      await expect.poll(() => redis.pttl(keys.jobStreamed('job')), { timeout: 5_000 }).toBeGreaterThan(10_000);
      release();
      await redis.pexpire(keys.jobStreamed('job'), 10_000);
      // Nothing renews it any more: the timer stopped with the last hold.
      expect(presence.count).toBe(0);
    } finally {
      presence.close();
    }
  });
});
