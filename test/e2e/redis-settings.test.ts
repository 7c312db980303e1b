/**
 * The API's and the agent's start-up against a Redis with an evicting maxmemory-policy: both
 * refuse it (the API's main prints the message and exits 2, the agent's logs it and exits 1),
 * unless ALLOW_EVICTING_REDIS is set, when both start and log the error. The check itself,
 * setting by setting: packages/redis/src/redis-settings.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApi, parseConfig as parseApiConfig } from '@switchyard/api';
import { parseConfig as parseAgentConfig, startAgent } from '@switchyard/agent';
import { createGpuSim, type GpuSim } from '@switchyard/gpu-sim';
import { RedisSettingsRefused } from '@switchyard/redis';
import { findOnPath, spawnRedisServer, uniquePrefix } from '@switchyard/testing';
import { FAST_SIM } from '../support/stack.js';

/** A logger whose lines the test reads. */
function capturingLogger() {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  return { logger, errors: () => lines.filter((line) => line.level >= 50).map((line) => line.msg) };
}

describe.skipIf(!findOnPath('redis-server'))('start-up on an evicting Redis', () => {
  let dir: string;
  let redis: Awaited<ReturnType<typeof spawnRedisServer>>;
  let sim: GpuSim;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'evicting-redis-'));
    redis = await spawnRedisServer(undefined, { settings: { appendonly: 'yes', appendfsync: 'everysec', dir, 'maxmemory-policy': 'allkeys-lru' } });
    sim = await createGpuSim(FAST_SIM, { logger: pino({ level: 'silent' }) });
  });
  afterAll(async () => {
    await sim?.close();
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const apiConfig = (extra = {}) => parseApiConfig({ redisUrl: redis.url, redisPrefix: uniquePrefix('evicting'), host: '127.0.0.1', port: 0, ...extra });
  const agentConfig = (extra = {}) =>
    parseAgentConfig({ redisUrl: redis.url, redisPrefix: uniquePrefix('evicting'), backendUrl: sim.url, agentId: uniquePrefix('agent'), ...extra });

  it('the API refuses it, naming maxmemory-policy and ALLOW_EVICTING_REDIS', async () => {
    const error = await createApi(apiConfig(), { logger: pino({ level: 'silent' }) }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(RedisSettingsRefused);
    expect((error as Error).message).toMatch(/^Redis runs with maxmemory-policy allkeys-lru: .* refusing to start \(ALLOW_EVICTING_REDIS=1 starts anyway\)$/);
  });

  it('the agent refuses it too', async () => {
    await expect(startAgent(agentConfig(), { logger: pino({ level: 'silent' }) })).rejects.toBeInstanceOf(RedisSettingsRefused);
  });

  it('both start with ALLOW_EVICTING_REDIS=1, logging the policy as an error', async () => {
    const apiLog = capturingLogger();
    const api = await createApi(apiConfig({ allowEvictingRedis: '1' }), { logger: apiLog.logger });
    await api.close();
    const agentLog = capturingLogger();
    const agent = await startAgent(agentConfig({ allowEvictingRedis: true }), { logger: agentLog.logger });
    await agent.close();
    for (const errors of [apiLog.errors(), agentLog.errors()]) {
      expect(errors).toEqual([expect.stringMatching(/^Redis runs with maxmemory-policy allkeys-lru: .* starting anyway, as ALLOW_EVICTING_REDIS=1 allows$/)]);
    }
  });
});
