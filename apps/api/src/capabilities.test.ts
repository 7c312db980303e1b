import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from '@switchyard/redis';
import { redisKeys } from '@switchyard/protocol';
import { closeRedis, createRedis } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { ModelCapabilities } from './capabilities.js';

describe('ModelCapabilities', () => {
  let redis: RedisConnection;
  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
  });
  afterAll(() => closeRedis(redis));

  it('reuses what it read for maxAgeMs, and does not remember a model that has no record yet', async () => {
    const keys = redisKeys(uniquePrefix('caps'));
    let now = 1_000;
    const capabilities = new ModelCapabilities({ redis, keys }, 5_000, () => now);
    const share = (listed: string[]) =>
      redis.set(keys.modelInfo('m:1'), JSON.stringify({ model: 'm:1', digest: 'sha256:ab', show: { capabilities: listed }, agent: 'a', updated_at: now }));

    expect(await capabilities.of('m:1')).toBeUndefined();
    await share(['embedding']);
    expect(await capabilities.of('m:1')).toEqual(['embedding']); // heard at once: no record was remembered
    await share(['completion']);
    now += 4_999;
    expect(await capabilities.of('m:1')).toEqual(['embedding']); // within maxAgeMs: no read
    now += 1;
    expect(await capabilities.of('m:1')).toEqual(['completion']);
  });
});
