import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EnvPositiveInt, LogLevel, RedisPrefix, parseEnvConfig, readEnv } from './index.js';

const Schema = z.object({
  port: EnvPositiveInt.default(1),
  backend: z.string().url().optional(),
  sizes: z.array(EnvPositiveInt).default([]),
  level: LogLevel.default('info'),
  prefix: RedisPrefix.default('sy'),
});
const NAMES = { port: 'PORT', backend: ['BACKEND_URL', 'OLLAMA_URL'], sizes: 'SIZES', level: 'LOG_LEVEL', prefix: 'REDIS_PREFIX' } as const;
const LISTS = new Set(['sizes'] as const);

function failure(env: Record<string, string>): string {
  const { values, nameOf } = readEnv(env, NAMES, LISTS);
  try {
    parseEnvConfig(Schema, values, 'test', nameOf);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('did not throw');
}

describe('readEnv and parseEnvConfig', () => {
  it('reads set variables only (empty counts as unset), splits lists, takes the first of several names', () => {
    const { values } = readEnv({ PORT: '', SIZES: ' 1, 2 ,,', OLLAMA_URL: 'http://o', LOG_LEVEL: 'warn' }, NAMES, LISTS);
    expect(values).toEqual({ sizes: ['1', '2'], backend: 'http://o', level: 'warn' });
    expect(readEnv({ BACKEND_URL: 'http://b', OLLAMA_URL: 'http://o' }, NAMES).values).toEqual({ backend: 'http://b' });
    expect(parseEnvConfig(Schema, readEnv({ SIZES: '3,4' }, NAMES, LISTS).values, 'test')).toMatchObject({ port: 1, sizes: [3, 4], prefix: 'sy' });
  });

  it('names the variable each problem came from, list items by index', () => {
    expect(failure({ PORT: 'x', OLLAMA_URL: 'nope', SIZES: '1,0', LOG_LEVEL: 'loud', REDIS_PREFIX: 'a:b' })).toBe(
      'invalid test configuration: PORT: must be a number; OLLAMA_URL: Invalid URL; SIZES.1: must be a number; ' +
        'LOG_LEVEL: Invalid option: expected one of "fatal"|"error"|"warn"|"info"|"debug"|"trace"|"silent"; ' +
        'REDIS_PREFIX: Invalid string: must match pattern /^[A-Za-z0-9._-]+$/',
    );
  });

  it('names a field that did not come from the environment by its first variable', () => {
    const { nameOf } = readEnv({}, NAMES);
    expect([nameOf('backend'), nameOf('port'), nameOf('unlisted')]).toEqual(['BACKEND_URL', 'PORT', 'unlisted']);
  });
});
