import { describe, expect, it } from 'vitest';
import { ENV_NAMES, loadConfig, parseConfig } from './config.js';

/** The message loadConfig throws, or a failure when it does not throw. */
function failure(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`loadConfig(${JSON.stringify(env)}) did not throw`);
}

describe('API loadConfig', () => {
  it('has a default for everything but what a deployment must say', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ host: '0.0.0.0', port: 8080, redisUrl: 'redis://127.0.0.1:6379', redisPrefix: 'sy', logLevel: 'info', queueDepthLimit: 1_000 });
    expect(config.apiKeys).toBeUndefined();
  });

  it('reads each field from its variable, numbers coerced, empty variables ignored', () => {
    const config = loadConfig({
      PORT: '9000',
      REDIS_PREFIX: 'a.b-c_d',
      LOG_LEVEL: 'debug',
      FAIR_SHARE_STEP_SECONDS: '0.5',
      CANCEL_WAIT_MS: '0',
      HOST: '',
      API_KEYS: 'acme:k',
    });
    expect(config).toMatchObject({ port: 9000, redisPrefix: 'a.b-c_d', logLevel: 'debug', fairShareStepSeconds: 0.5, cancelWaitMs: 0, host: '0.0.0.0', apiKeys: 'acme:k' });
  });

  it('names every bad variable in one message', () => {
    expect(
      failure({
        PORT: '70000',
        REDIS_PREFIX: 'a:b',
        LOG_LEVEL: 'loud',
        QUEUE_DEPTH_LIMIT: '-1',
        BODY_LIMIT_BYTES: '0',
        MAX_JSON_DEPTH: '5000',
        FAIR_SHARE_STEP_SECONDS: 'x',
        CANCEL_WAIT_MS: '1.5',
      }),
    ).toBe(
      'invalid API configuration: PORT: must be a number; REDIS_PREFIX: Invalid string: must match pattern /^[A-Za-z0-9._-]+$/; ' +
        'BODY_LIMIT_BYTES: must be a number; CANCEL_WAIT_MS: must be a number; ' +
        'LOG_LEVEL: Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"|"silent"; ' +
        'MAX_JSON_DEPTH: must be a number; QUEUE_DEPTH_LIMIT: must be a number; FAIR_SHARE_STEP_SECONDS: must be a number',
    );
  });

  it('takes an empty REDIS_URL at its word (and refuses it)', () => {
    expect(failure({ REDIS_URL: '' })).toBe('invalid API configuration: REDIS_URL: Invalid URL');
    expect(failure({ REDIS_URL: 'nope' })).toBe('invalid API configuration: REDIS_URL: Invalid URL');
  });

  it('names a variable for every field', () => {
    expect(Object.keys(ENV_NAMES).sort()).toEqual(
      Object.keys(
        loadConfig({
          PUBLIC_BASE_URL: 'http://x',
          API_KEYS: 'a:b',
          API_KEYS_FILE: 'f',
          ADMIN_API_KEYS: 'k',
          TRUSTED_PROXIES: '127.0.0.1',
          CORS_ORIGINS: '*',
          REDIS_CLUSTER_NODES: 'r:1',
        }),
      ).sort(),
    );
  });

  it('reads REDIS_CLUSTER_NODES as host:port entries, and names a bad one', () => {
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'redis-0:7000, 10.0.0.2:7001,[::1]:7002' }).redisClusterNodes).toEqual([
      { host: 'redis-0', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '::1', port: 7002 },
    ]);
    expect(loadConfig({}).redisClusterNodes).toBeUndefined();
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis-0:7000,redis-1' })).toThrow(/REDIS_CLUSTER_NODES.*"redis-1" is not host:port/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis-0:70000' })).toThrow(/REDIS_CLUSTER_NODES/);
  });

  it('parseConfig validates a config given in code', () => {
    expect(parseConfig({ redisUrl: 'redis://h:1', port: 0 }).port).toBe(0);
    expect(() => parseConfig({ redisUrl: 'nope' })).toThrow(/Invalid URL/);
  });
});
