import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from './connection.js';
import { testRedis } from '@switchyard/testing';
import { closeRedis, createRedis } from './connection.js';
import { SharedSubscriber } from './shared-subscriber.js';

describe('SharedSubscriber on a real Redis', () => {
  let redis: RedisConnection;
  let subscriberConnection: RedisConnection;

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
    subscriberConnection = createRedis(testRedis(), 'worker');
  });
  afterAll(async () => {
    await closeRedis(redis);
    await closeRedis(subscriberConnection);
  });

  it('shares one Redis subscription between listeners of a channel', async () => {
    const subscriber = new SharedSubscriber(subscriberConnection);
    const a: string[] = [];
    const b: string[] = [];
    const offA = await subscriber.subscribe('chan-x', (m) => a.push(m));
    const offB = await subscriber.subscribe('chan-x', (m) => b.push(m));
    expect(subscriber.channelCount).toBe(1);
    await redis.spublish('chan-x', 'hello');
    await expect.poll(() => a.length + b.length).toBe(2);
    await offA();
    await redis.spublish('chan-x', 'again');
    await expect.poll(() => b.length).toBe(2);
    expect(a).toEqual(['hello']);
    await offB();
    expect(subscriber.channelCount).toBe(0);
    const channels = (await redis.pubsub('CHANNELS', 'chan-x')) as string[];
    expect(channels).toEqual([]);
  });
});
