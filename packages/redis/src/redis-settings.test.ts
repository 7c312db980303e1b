/**
 * The start-up check against real redis-server processes, each spawned with the settings
 * under test (an evicting policy, no AOF, fsync left to the OS, CONFIG renamed away, the
 * required ones), since what matters is what a real CONFIG GET answers.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisConnection } from './connection.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findOnPath, freePort, spawnRedisServer } from '@switchyard/testing';
import { closeRedis, createRedis, waitUntilReady } from './connection.js';
import { RedisSettingsRefused, checkRedisSettings, checkRedisSettingsAtStart, type SettingsLogger } from './redis-settings.js';

type Line = { level: 'warn' | 'error'; message: string; fields: Record<string, unknown> };

function recordingLogger(): SettingsLogger & { lines: Line[] } {
  const lines: Line[] = [];
  return {
    lines,
    warn: (fields, message) => lines.push({ level: 'warn', message, fields }),
    error: (fields, message) => lines.push({ level: 'error', message, fields }),
  };
}

const REQUIRED = { appendonly: 'yes', appendfsync: 'everysec', 'maxmemory-policy': 'noeviction' };

describe.skipIf(!findOnPath('redis-server'))('the Redis settings check on real redis-server processes', () => {
  const servers: Array<{ stop(): Promise<void> }> = [];
  const connections: RedisConnection[] = [];
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'redis-settings-'));
  });
  afterAll(async () => {
    await Promise.all(connections.map((connection) => closeRedis(connection)));
    await Promise.all(servers.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** A redis-server with these settings over the required ones, and a connection to it as an app opens it. */
  async function redisWith(settings: Record<string, string | string[]>, role: 'request' | 'worker' = 'worker') {
    const server = await spawnRedisServer(undefined, { settings: { ...REQUIRED, dir: mkdtempSync(join(dir, 'r-')), ...settings } });
    servers.push(server);
    const redis = createRedis(server.url, role);
    connections.push(redis);
    await waitUntilReady(redis);
    return { url: server.url, redis };
  }

  it('passes the required settings without a word', async () => {
    const { url, redis } = await redisWith({});
    const logger = recordingLogger();
    const reading = await checkRedisSettings(redis, { redisUrl: url, allowEvicting: false, logger });
    expect(reading).toEqual({ values: REQUIRED, problems: [] });
    expect(logger.lines).toEqual([]);
  });

  it('passes appendfsync always: stricter than everysec, it loses nothing', async () => {
    const { url, redis } = await redisWith({ appendfsync: 'always' });
    const logger = recordingLogger();
    expect((await checkRedisSettings(redis, { redisUrl: url, allowEvicting: false, logger })).problems).toEqual([]);
    expect(logger.lines).toEqual([]);
  });

  it('refuses an evicting maxmemory-policy, naming it and ALLOW_EVICTING_REDIS', async () => {
    const { url, redis } = await redisWith({ 'maxmemory-policy': 'allkeys-lru' });
    const logger = recordingLogger();
    const refused = await checkRedisSettings(redis, { redisUrl: url, allowEvicting: false, logger }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(RedisSettingsRefused);
    expect(refused).toMatchObject({ code: 'redis_evicting', setting: 'maxmemory-policy', value: 'allkeys-lru' });
    expect((refused as Error).message).toMatch(
      /^Redis runs with maxmemory-policy allkeys-lru: .*set maxmemory-policy noeviction .* refusing to start \(ALLOW_EVICTING_REDIS=1 starts anyway\)$/,
    );
    // The refusal is the message; nothing else was wrong, so nothing else was logged.
    expect(logger.lines).toEqual([]);
  });

  it('starts on an evicting policy when ALLOW_EVICTING_REDIS allows it, logging an error', async () => {
    const { url, redis } = await redisWith({ 'maxmemory-policy': 'volatile-ttl' });
    const logger = recordingLogger();
    await checkRedisSettings(redis, { redisUrl: url, allowEvicting: true, logger });
    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]).toMatchObject({ level: 'error', fields: { setting: 'maxmemory-policy', value: 'volatile-ttl', ALLOW_EVICTING_REDIS: true } });
    expect(logger.lines[0]!.message).toMatch(/maxmemory-policy volatile-ttl: .* starting anyway, as ALLOW_EVICTING_REDIS=1 allows$/);
  });

  it('logs an error naming appendonly when the AOF is off, and goes on', async () => {
    const { url, redis } = await redisWith({ appendonly: 'no' });
    const logger = recordingLogger();
    const reading = await checkRedisSettings(redis, { redisUrl: url, allowEvicting: false, logger });
    expect(reading.problems.map((problem) => problem.setting)).toEqual(['appendonly']);
    expect(logger.lines).toEqual([
      {
        level: 'error',
        message: expect.stringMatching(/^Redis runs with appendonly no: a restart of Redis loses .*; set appendonly yes$/),
        fields: { redis: url, setting: 'appendonly', value: 'no', required: 'yes' },
      },
    ]);
  });

  it('logs every setting that differs before refusing: appendfsync no and an evicting policy', async () => {
    const { url, redis } = await redisWith({ appendfsync: 'no', 'maxmemory-policy': 'allkeys-random' });
    const logger = recordingLogger();
    await expect(checkRedisSettings(redis, { redisUrl: url, allowEvicting: false, logger })).rejects.toBeInstanceOf(RedisSettingsRefused);
    expect(logger.lines.map((line) => [line.level, line.fields.setting])).toEqual([['error', 'appendfsync']]);
    expect(logger.lines[0]!.message).toMatch(/appendfsync no: .*set appendfsync everysec/);
  });

  it('warns once that the settings could not be checked when CONFIG is renamed away, and goes on', async () => {
    const { url, redis } = await redisWith({ 'rename-command': ['CONFIG', ''] });
    const logger = recordingLogger();
    const reading = await checkRedisSettings(redis, { redisUrl: url, allowEvicting: false, logger });
    expect(reading.unchecked?.settings).toEqual(['appendonly', 'appendfsync', 'maxmemory-policy']);
    expect(logger.lines).toHaveLength(1);
    expect(logger.lines[0]).toMatchObject({ level: 'warn' });
    expect(logger.lines[0]!.message).toMatch(
      /^could not check the settings of Redis at redis:\/\/127\.0\.0\.1:\d+: CONFIG GET was refused \(.*unknown command.*\); make sure it runs with appendonly yes, appendfsync everysec, maxmemory-policy noeviction/,
    );
  });

  it("checks a fail-fast connection (the API's) once Redis first answers, when it was not up at start: too late to refuse, so an evicting policy is logged", async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const redis = createRedis(url, 'request');
    connections.push(redis);
    redis.on('error', () => undefined);
    const logger = recordingLogger();
    // Returns at once: the API starts without Redis and answers 503 until it is back.
    await checkRedisSettingsAtStart(redis, { redisUrl: url, allowEvicting: false, logger });
    expect(logger.lines).toEqual([]);
    servers.push(await spawnRedisServer(undefined, { port, settings: { ...REQUIRED, dir: mkdtempSync(join(dir, 'r-')), 'maxmemory-policy': 'allkeys-lfu' } }));
    await expect.poll(() => logger.lines.length, { timeout: 10_000 }).toBe(1);
    expect(logger.lines[0]).toMatchObject({ level: 'error', fields: { setting: 'maxmemory-policy', value: 'allkeys-lfu' } });
    expect(logger.lines[0]!.message).toMatch(/found only once Redis answered, after start-up: running on/);
  });

  it('refuses at start on a connection that is up (an agent waits for Redis, so it always is)', async () => {
    const { url, redis } = await redisWith({ 'maxmemory-policy': 'allkeys-lru' }, 'request');
    await expect(checkRedisSettingsAtStart(redis, { redisUrl: url, allowEvicting: false, logger: recordingLogger() })).rejects.toBeInstanceOf(RedisSettingsRefused);
  });
});
