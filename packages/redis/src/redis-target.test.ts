import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeRedisError, redactRedisUrl } from './connection-errors.js';
import { RedisConnectionFields, checkRedisConnection, describeRedisTarget, ioredisArgsOf, parseHostPort, redisTarget, type RedisTarget } from './redis-target.js';

const Settings = z.object({ redisUrl: z.string().optional(), ...RedisConnectionFields }).superRefine(checkRedisConnection);
const problems = (raw: Record<string, unknown>) => Settings.safeParse(raw).error?.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);

describe('parseHostPort', () => {
  it('takes host:port, [v6]:port and a host alone (the sentinel port)', () => {
    expect(parseHostPort('10.0.0.1:26380')).toEqual({ host: '10.0.0.1', port: 26380 });
    expect(parseHostPort(' redis-sentinel.ns.svc ')).toEqual({ host: 'redis-sentinel.ns.svc', port: 26379 });
    expect(parseHostPort('[::1]:5000')).toEqual({ host: '::1', port: 5000 });
    expect(parseHostPort('[::1]')).toEqual({ host: '::1', port: 26379 });
  });

  it('names what is wrong with the rest', () => {
    expect(parseHostPort('host:0')).toMatch(/no valid port/);
    expect(parseHostPort('host:99999')).toMatch(/no valid port/);
    expect(parseHostPort('host:')).toMatch(/no valid port/);
    expect(parseHostPort('host:port')).toMatch(/no valid port/);
    expect(parseHostPort(':26379')).toMatch(/is not host:port/);
    expect(parseHostPort('redis://h:1')).toMatch(/is not host:port/);
    expect(parseHostPort('a b:1')).toMatch(/is not host:port/);
    expect(parseHostPort('::1:5')).toMatch(/is not host:port/);
  });
});

describe('Redis connection settings', () => {
  it('accept a URL, or both halves of Sentinel', () => {
    expect(problems({ redisUrl: 'redis://h:1' })).toBeUndefined();
    expect(problems({ redisSentinels: 'a:1,b:2', redisSentinelMaster: 'mymaster' })).toBeUndefined();
    expect(Settings.parse({ redisSentinels: 'a:1, b', redisSentinelMaster: 'm' }).redisSentinels).toEqual([
      { host: 'a', port: 1 },
      { host: 'b', port: 26379 },
    ]);
  });

  it('refuse half a Sentinel setup, both modes at once, and credentials in two places, naming the field to fix', () => {
    expect(problems({ redisSentinels: 'a:1' })).toEqual([expect.stringMatching(/^redisSentinelMaster: required with REDIS_SENTINELS: set it to the name/)]);
    expect(problems({ redisSentinelMaster: 'm' })).toEqual([expect.stringMatching(/^redisSentinels: required with REDIS_SENTINEL_MASTER: set it to the sentinels/)]);
    expect(problems({ redisUrl: 'redis://h:1', redisSentinels: 'a:1', redisSentinelMaster: 'm' })).toEqual([
      expect.stringMatching(/^redisUrl: set together with REDIS_SENTINELS: unset one/),
    ]);
    expect(problems({})).toEqual([expect.stringMatching(/^redisUrl: required/)]);
    expect(problems({ redisUrl: 'redis://:pw@h:1', redisPassword: 'pw2' })).toEqual(['redisPassword: REDIS_URL carries a password too: keep one of them']);
  });

  it('name each address that is not host:port', () => {
    expect(problems({ redisSentinels: 'a:1,b:x,,c:70000', redisSentinelMaster: 'm' })).toEqual([
      expect.stringMatching(/^redisSentinels: "b:x" has no valid port .*; write the sentinels as host:port,host:port$/),
      expect.stringMatching(/^redisSentinels: "c:70000" has no valid port/),
    ]);
    expect(problems({ redisSentinels: ' , ', redisSentinelMaster: 'm' })).toEqual([expect.stringMatching(/lists no sentinel/)]);
  });
});

describe('a target as ioredis options', () => {
  const parsed = (raw: Record<string, unknown>) => redisTarget(Settings.parse(raw), (path: string) => `PEM of ${path}`) as Parameters<typeof ioredisArgsOf>[0];

  it('single: the URL, with credentials and TLS from the variables', () => {
    expect(ioredisArgsOf(parsed({ redisUrl: 'redis://h:1' }))).toEqual({ url: 'redis://h:1', options: {} });
    expect(ioredisArgsOf(parsed({ redisUrl: 'rediss://h:1', redisPassword: 'pw', redisTlsCaFile: '/ca.pem' }))).toEqual({
      url: 'rediss://h:1',
      options: { password: 'pw', tls: { ca: 'PEM of /ca.pem' } },
    });
    expect(ioredisArgsOf(parsed({ redisUrl: 'redis://h:1', redisTls: '1' })).options.tls).toEqual({});
  });

  it('sentinel: the sentinels and master name, the failover detector, TLS apart for data and sentinels', () => {
    const target = parsed({
      redisSentinels: 's1:26379,s2:26380',
      redisSentinelMaster: 'mymaster',
      redisUsername: 'app',
      redisPassword: 'pw',
      redisSentinelPassword: 'spw',
      redisTls: '1',
      redisSentinelTls: '1',
      redisTlsCaFile: '/ca.pem',
    });
    expect(ioredisArgsOf(target)).toEqual({
      options: {
        username: 'app',
        password: 'pw',
        sentinels: [
          { host: 's1', port: 26379 },
          { host: 's2', port: 26380 },
        ],
        name: 'mymaster',
        role: 'master',
        tls: { ca: 'PEM of /ca.pem' },
        enableTLSForSentinelMode: true,
        sentinelPassword: 'spw',
        sentinelTLS: { ca: 'PEM of /ca.pem' },
        failoverDetector: true,
      },
    });
    expect(ioredisArgsOf(parsed({ redisSentinels: 's1', redisSentinelMaster: 'm' })).options).not.toHaveProperty('tls');
  });

  it('a CA file that cannot be read stops start-up with one line naming the variable', () => {
    const settings = Settings.parse({ redisUrl: 'rediss://h:1', redisTlsCaFile: '/nonexistent/ca.pem' });
    expect(() => redisTarget(settings)).toThrow(/^REDIS_TLS_CA_FILE: cannot read \/nonexistent\/ca.pem \(ENOENT\): set it to a readable PEM file/);
  });

  it('log lines name the master and its sentinels, never a password', () => {
    const target: RedisTarget = { sentinels: [{ host: '::1', port: 1 }], masterName: 'm', password: 'secret' };
    const where = describeRedisTarget(target);
    expect(where).toBe('Sentinel master "m" (sentinels [::1]:1)');
    expect(redactRedisUrl(where)).toBe(where);
    expect(redactRedisUrl(describeRedisTarget({ url: 'redis://u:secret@h:1' }))).not.toContain('secret');
    const unreachable = new Error('All sentinels are unreachable. Retrying from scratch after 10ms.');
    expect(describeRedisError(where, unreachable)).toBe(
      'cannot reach Redis at Sentinel master "m" (sentinels [::1]:1): All sentinels are unreachable. Retrying from scratch after 10ms. — start Redis or set REDIS_SENTINELS and REDIS_SENTINEL_MASTER',
    );
    expect(describeRedisError(where, new Error('WRONGPASS invalid username-password pair'))).toMatch(/set REDIS_USERNAME and REDIS_PASSWORD for the master/);
  });
});
