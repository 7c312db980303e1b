import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { EnvFlag, parseEnvConfig, readEnv } from './index.js';

const Schema = z.object({ allow: EnvFlag.default(false) });
const NAMES = { allow: 'ALLOW_EVICTING_REDIS' } as const;
const load = (env: Record<string, string>) => {
  const { values, nameOf } = readEnv(env, NAMES);
  return parseEnvConfig(Schema, values, 'test', nameOf).allow;
};

describe('EnvFlag', () => {
  it('reads 1/true as on and 0/false as off; unset or empty is the default', () => {
    expect([load({ ALLOW_EVICTING_REDIS: '1' }), load({ ALLOW_EVICTING_REDIS: 'true' })]).toEqual([true, true]);
    expect([load({ ALLOW_EVICTING_REDIS: '0' }), load({ ALLOW_EVICTING_REDIS: 'false' }), load({}), load({ ALLOW_EVICTING_REDIS: '' })]).toEqual([false, false, false, false]);
  });

  it('takes a boolean from code', () => {
    expect(Schema.parse({ allow: true }).allow).toBe(true);
  });

  it('refuses anything else, naming the variable, rather than guess (yes? on? 2?)', () => {
    for (const value of ['yes', 'on', '2', 'TRUE ']) {
      expect(() => load({ ALLOW_EVICTING_REDIS: value })).toThrow('invalid test configuration: ALLOW_EVICTING_REDIS: must be 1 or 0');
    }
  });
});
