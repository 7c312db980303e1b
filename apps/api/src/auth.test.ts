import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiKeyStore, cookieValue } from './auth.js';

function file(content: unknown): string {
  const path = join(mkdtempSync(join(tmpdir(), 'keys-')), 'keys.json');
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

describe('ApiKeyStore', () => {
  it('runs open without keys: everyone is the default tenant, with admin rights', () => {
    const store = ApiKeyStore.fromConfig({});
    expect(store.open).toBe(true);
    expect(store.authenticate(undefined)).toMatchObject({ tenant: 'default', admin: true });
  });

  it('maps keys from the file (plain or sha256), API_KEYS and ADMIN_API_KEYS to tenants', () => {
    const store = ApiKeyStore.fromConfig({
      apiKeysFile: file({
        keys: [
          { tenant: 'acme', key: 'acme-key-0123456789' },
          { tenant: 'ops', sha256: createHash('sha256').update('ops-key-0123456789ab').digest('hex'), admin: true },
        ],
        tenants: { acme: { in_flight: 5, model_in_flight: 2 } },
      }),
      apiKeys: 'beta:beta-key-0123456789, gamma:gamma:key:with:colons',
      adminApiKeys: 'root-key-0123456789ab',
    });
    expect(store.open).toBe(false);
    expect(store.authenticate('acme-key-0123456789')).toMatchObject({ tenant: 'acme', admin: false });
    expect(store.authenticate('ops-key-0123456789ab')).toMatchObject({ tenant: 'ops', admin: true });
    expect(store.authenticate('beta-key-0123456789')).toMatchObject({ tenant: 'beta', admin: false });
    expect(store.authenticate('gamma:key:with:colons')).toMatchObject({ tenant: 'gamma', admin: false });
    expect(store.authenticate('root-key-0123456789ab')).toMatchObject({ tenant: 'admin', admin: true });
    expect(store.authenticate('acme-key-012345678')).toBeUndefined();
    expect(store.authenticate(undefined)).toBeUndefined();
    expect(store.tenantLimits('acme')).toEqual({ inFlight: 5, modelInFlight: 2 });
    expect(store.tenantLimits('beta')).toEqual({});
  });

  it('refuses bad configuration with the variable and the reason', () => {
    expect(() => ApiKeyStore.fromConfig({ apiKeys: 'nokeyhere' })).toThrow(/API_KEYS: entries are tenant:key/);
    expect(() => ApiKeyStore.fromConfig({ apiKeys: 'acme:short' })).toThrow(/at least 16 characters/);
    expect(() => ApiKeyStore.fromConfig({ apiKeysFile: file('{not json') })).toThrow(/API_KEYS_FILE: cannot read/);
    expect(() => ApiKeyStore.fromConfig({ apiKeysFile: file({ keys: [{ tenant: 'a b', key: 'x'.repeat(20) }] }) })).toThrow(/API_KEYS_FILE: keys\.0/);
    expect(() => ApiKeyStore.fromConfig({ apiKeysFile: join(tmpdir(), 'does-not-exist.json') })).toThrow(/API_KEYS_FILE/);
  });

  it('reads the key cookie', () => {
    expect(cookieValue('a=1; switchyard_key=abc%3D; b=2', 'switchyard_key')).toBe('abc=');
    expect(cookieValue('a=1', 'switchyard_key')).toBeUndefined();
  });
});
