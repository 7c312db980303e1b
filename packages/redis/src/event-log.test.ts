import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { redisKeys } from '@switchyard/protocol';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { closeRedis, createRedis } from './connection.js';
import { EventLog } from './event-log.js';
import { SharedSubscriber } from './shared-subscriber.js';

describe('EventLog + SharedSubscriber on a real Redis', () => {
  let redis: Redis;
  let subscriberConnection: Redis;
  const keys = redisKeys(uniquePrefix('eventlog'));

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
    subscriberConnection = createRedis(testRedis(), 'worker');
  });
  afterAll(async () => {
    await closeRedis(redis);
    await closeRedis(subscriberConnection);
  });

  it('assigns increasing seq, publishes live and replays after a given seq', async () => {
    const log = new EventLog(redis, keys);
    const subscriber = new SharedSubscriber(subscriberConnection);
    const live: string[] = [];
    const unsubscribe = await subscriber.subscribe(keys.jobChannel('j1'), (message) => live.push(message));

    expect(await log.append('j1', { type: 'queued', position: 0, depth: 1 })).toBe(1);
    expect(await log.append('j1', { type: 'token', text: 'a' })).toBe(2);
    expect(await log.append('j1', { type: 'token', text: 'b' })).toBe(3);

    const all = await log.readAfter('j1', 0);
    expect(all.map((e) => e.seq)).toEqual([1, 2, 3]);
    const tail = await log.readAfter('j1', 1);
    expect(tail.map((e) => (e.type === 'token' ? e.text : e.type))).toEqual(['a', 'b']);
    expect((await log.last('j1'))?.seq).toBe(3);

    await expect.poll(() => live.length).toBe(3);
    expect(JSON.parse(live[2]!)).toEqual({ seq: 3, type: 'token', text: 'b' });
    await unsubscribe();
    expect(subscriber.channelCount).toBe(0);
  });

  it('writes a conditional first event only when the log is empty', async () => {
    const log = new EventLog(redis, keys);
    expect(await log.append('j2', { type: 'queued', position: 0, depth: 1 }, { onlyIfEmpty: true })).toBe(1);
    expect(await log.append('j2', { type: 'queued', position: 0, depth: 1 }, { onlyIfEmpty: true })).toBe(0);
    expect((await log.readAfter('j2', 0)).length).toBe(1);
  });

  it('writes a position update only while the newest event is a queued one', async () => {
    const log = new EventLog(redis, keys);
    expect(await log.append('j4', { type: 'queued', position: 2, depth: 3 }, { onlyIfLastIsQueued: true })).toBe(0);
    await log.append('j4', { type: 'queued', position: 2, depth: 3 });
    expect(await log.append('j4', { type: 'queued', position: 1, depth: 2, eta_s: 1.5 }, { onlyIfLastIsQueued: true })).toBe(2);
    await log.append('j4', { type: 'started', agent: 'a', cold: false, load_ms: 0 });
    expect(await log.append('j4', { type: 'queued', position: 0, depth: 1 }, { onlyIfLastIsQueued: true })).toBe(0);
    // A token whose text looks like a queued event does not fool the check.
    await log.append('j4', { type: 'token', text: '{"seq":1,"type":"queued"}' });
    expect(await log.append('j4', { type: 'queued', position: 0, depth: 1 }, { onlyIfLastIsQueued: true })).toBe(0);
    expect((await log.readAfter('j4', 0)).map((event) => event.type)).toEqual(['queued', 'queued', 'started', 'token']);
  });

  it('gives finished logs a shorter TTL', async () => {
    const log = new EventLog(redis, keys, { liveTtlSeconds: 1000, finishedTtlSeconds: 50 });
    await log.append('j3', { type: 'token', text: 'x' });
    expect(await redis.ttl(keys.jobEvents('j3'))).toBeGreaterThan(900);
    await log.append('j3', { type: 'error', code: 'cancelled', message: 'bye' });
    expect(await redis.ttl(keys.jobEvents('j3'))).toBeLessThanOrEqual(50);
  });

  it('shares one Redis subscription between listeners of a channel', async () => {
    const subscriber = new SharedSubscriber(subscriberConnection);
    const a: string[] = [];
    const b: string[] = [];
    const offA = await subscriber.subscribe('chan-x', (m) => a.push(m));
    const offB = await subscriber.subscribe('chan-x', (m) => b.push(m));
    expect(subscriber.channelCount).toBe(1);
    await redis.publish('chan-x', 'hello');
    await expect.poll(() => a.length + b.length).toBe(2);
    await offA();
    await redis.publish('chan-x', 'again');
    await expect.poll(() => b.length).toBe(2);
    expect(a).toEqual(['hello']);
    await offB();
    expect(subscriber.channelCount).toBe(0);
    const channels = (await redis.pubsub('CHANNELS', 'chan-x')) as string[];
    expect(channels).toEqual([]);
  });
});
