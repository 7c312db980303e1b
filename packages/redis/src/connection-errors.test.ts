import { describe, expect, it } from 'vitest';
import { freePort } from '@switchyard/testing';
import { ErrorThrottle, describeRedisError, redactRedisUrl } from './connection-errors.js';
import { closeRedis, createRedis, describeRedisTarget } from './connection.js';

const refused = () => Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });

describe('ErrorThrottle', () => {
  it('passes the first error, holds repeats for the interval, then passes one with the count', () => {
    let now = 0;
    const throttle = new ErrorThrottle(10_000, () => now);
    expect(throttle.pass(refused())).toEqual({ repeats: 0 });
    for (let i = 0; i < 41; i++) {
      now += 200;
      expect(throttle.pass(refused())).toBeUndefined();
    }
    now = 10_000;
    expect(throttle.pass(refused())).toEqual({ repeats: 41 });
  });

  it('never hides a new kind of error behind an old one, and starts afresh after reset', () => {
    let now = 0;
    const throttle = new ErrorThrottle(10_000, () => now);
    expect(throttle.pass(refused())).toBeDefined();
    expect(throttle.pass(new Error('WRONGPASS invalid username-password pair'))).toEqual({ repeats: 0 });
    expect(throttle.pass(refused())).toBeUndefined();
    throttle.reset();
    now += 1;
    expect(throttle.pass(refused())).toEqual({ repeats: 0 });
  });

  it('counts the repeats an upstream throttle already folded into an error', () => {
    let now = 0;
    const throttle = new ErrorThrottle(10_000, () => now);
    throttle.pass(refused());
    throttle.pass(Object.assign(refused(), { repeats: 7 }));
    now = 10_000;
    expect(throttle.pass(refused())).toEqual({ repeats: 8 });
  });

  it('admits an error for a client to emit, marking it with the repeats held back before it', () => {
    let now = 0;
    const throttle = new ErrorThrottle(10_000, () => now);
    const first = refused();
    expect(throttle.admit(first)).toBe(true);
    expect(first).not.toHaveProperty('repeats');
    expect(throttle.admit(refused())).toBe(false);
    now = 10_000;
    const later = refused();
    expect(throttle.admit(later)).toBe(true);
    expect(later).toHaveProperty('repeats', 1);
  });
});

describe('describeRedisError', () => {
  it('names the address, the reason, the setting and the fix, without the password', () => {
    expect(describeRedisError('redis://127.0.0.1:1', refused())).toBe('cannot reach Redis at redis://127.0.0.1:1: ECONNREFUSED — start Redis or set REDIS_URL');
    expect(describeRedisError('redis://:hunter2@db:6379', new Error('WRONGPASS invalid username-password pair'))).toMatch(
      /^Redis at redis:\/\/:\*\*\*@db:6379 refused the credentials .* set REDIS_URL/,
    );
    expect(redactRedisUrl('redis://u:secret@h:1/2')).not.toContain('secret');
    // A cluster is named by its seed nodes (describeRedisTarget), and the fix is its own variable.
    const cluster = describeRedisTarget({
      clusterNodes: [
        { host: 'r0', port: 7000 },
        { host: 'r1', port: 7001 },
      ],
    });
    expect(redactRedisUrl(cluster)).toBe('cluster r0:7000,r1:7001');
    expect(describeRedisError(cluster, refused())).toBe('cannot reach Redis at cluster r0:7000,r1:7001: ECONNREFUSED — start Redis or set REDIS_CLUSTER_NODES');
  });
});

describe('createRedis on an unreachable Redis', () => {
  it('emits its first connection error and holds back the ones of the following reconnects', async () => {
    const redis = createRedis(`redis://127.0.0.1:${await freePort()}`, 'worker', { retryStrategy: () => 5 });
    const errors: Error[] = [];
    redis.on('error', (error: Error) => errors.push(error));
    // ioredis schedules a reconnect after every failed attempt: ten of them, each one failed.
    let reconnects = 0;
    const tenFailures = new Promise<void>((resolve) => redis.on('reconnecting', () => ++reconnects === 10 && resolve()));
    try {
      await tenFailures;
      expect(errors).toHaveLength(1);
      expect(describeRedisError('redis://x:1', errors[0])).toMatch(/^cannot reach Redis at redis:\/\/x:1: ECONNREFUSED/);
    } finally {
      await closeRedis(redis);
    }
  });
});
