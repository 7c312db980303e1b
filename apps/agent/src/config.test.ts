import { describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from './config.js';

/** The message `run` throws, or a failure when it does not throw. */
function failure(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('did not throw');
}

describe('agent loadConfig', () => {
  it('has defaults, and an agent id made from the host name', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6379',
      redisPrefix: 'sy',
      backendUrl: 'http://127.0.0.1:11434',
      slots: 4,
      gpuVramBytes: [24e9],
      keepAlive: -1,
      logLevel: 'info',
    });
    expect(config.agentId).toMatch(/^[A-Za-z0-9._-]+-[0-9a-f]{6}$/);
  });

  it('reads lists, byte sizes and numbers; ignores empty variables (REDIS_URL too)', () => {
    const config = loadConfig({
      GPU_VRAM: '24GB, 48GiB',
      PINNED_MODELS: 'a:1, b,,',
      AGENT_SLOTS: '8',
      KEEP_ALIVE: '300',
      TOKEN_COALESCE_MS: '0',
      REDIS_URL: '',
      LOG_LEVEL: 'warn',
    });
    expect(config).toMatchObject({
      gpuVramBytes: [24e9, 48 * 2 ** 30],
      pinnedModels: ['a:1', 'b'],
      slots: 8,
      keepAlive: 300,
      tokenCoalesceMs: 0,
      redisUrl: 'redis://127.0.0.1:6379',
      logLevel: 'warn',
    });
    expect(loadConfig({ KEEP_ALIVE: '10m' }).keepAlive).toBe('10m');
  });

  it('prefers BACKEND_URL to OLLAMA_URL and names the one it read', () => {
    expect(loadConfig({ BACKEND_URL: 'http://a:1', OLLAMA_URL: 'nope' }).backendUrl).toBe('http://a:1');
    expect(loadConfig({ OLLAMA_URL: 'http://b:2' }).backendUrl).toBe('http://b:2');
    expect(failure(() => loadConfig({ OLLAMA_URL: 'nope' }))).toBe('invalid agent configuration: OLLAMA_URL: Invalid URL');
  });

  it('names every bad variable in one message, list items by index', () => {
    expect(
      failure(() =>
        loadConfig({ AGENT_SLOTS: 'abc', GPU_VRAM: '24GB,lots', REDIS_PREFIX: 'a b', DISPLACEMENT_MARGIN: '0.5', LOG_LEVEL: 'x', AGENT_ID: 'a/b', TOKEN_COALESCE_MS: '-1' }),
      ),
    ).toBe(
      'invalid agent configuration: REDIS_PREFIX: Invalid string: must match pattern /^[A-Za-z0-9._-]+$/; ' +
        'AGENT_ID: agent id may use letters, digits, . _ - only; AGENT_SLOTS: must be a number; ' +
        'GPU_VRAM.1: not a byte size: "lots" (try "24GB", "24GiB" or a number of bytes); TOKEN_COALESCE_MS: must be a number; ' +
        'DISPLACEMENT_MARGIN: must be at least 1; LOG_LEVEL: Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"|"silent"',
    );
  });

  it('parseConfig names fields when the config is given in code, ignoring undefined ones', () => {
    expect(failure(() => parseConfig({ slots: 0, gpuVramBytes: [], agentId: undefined }))).toBe(
      'invalid agent configuration: slots: must be a number; gpuVramBytes: needs at least one GPU; redisUrl: required: set REDIS_URL, or REDIS_SENTINELS and REDIS_SENTINEL_MASTER',
    );
    expect(parseConfig({ redisUrl: 'redis://h:1', slots: undefined }).slots).toBe(4);
  });
});

describe('agent loadConfig under Sentinel', () => {
  it('takes the sentinels and the master instead of a URL, and refuses half of them naming the variable', () => {
    const config = loadConfig({ REDIS_SENTINELS: 's1:26379', REDIS_SENTINEL_MASTER: 'mymaster', REDIS_SENTINEL_PASSWORD: 'spw' });
    expect(config).toMatchObject({ redisSentinels: [{ host: 's1', port: 26379 }], redisSentinelMaster: 'mymaster', redisSentinelPassword: 'spw' });
    expect(config.redisUrl).toBeUndefined();
    expect(failure(() => loadConfig({ REDIS_SENTINELS: 's1:26379' }))).toMatch(/^invalid agent configuration: REDIS_SENTINEL_MASTER: required with REDIS_SENTINELS/);
  });
});
