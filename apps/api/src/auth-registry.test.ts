import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { RedisConnection } from '@switchyard/redis';
import { pino } from 'pino';
import { redisKeys, type ApiKeyKeys } from '@switchyard/protocol';
import { closeRedis, createRedis, waitUntilReady } from '@switchyard/redis';
import { freePort, testRedis, uniquePrefix } from '@switchyard/testing';
import { ApiKeyStore } from './auth.js';
import { ApiError } from './errors.js';

// Counts the constant-time comparisons the store makes; the comparison itself stays Node's.
const comparisons = vi.hoisted(() => ({ count: 0 }));
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof import('node:crypto')>();
  return {
    ...actual,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      comparisons.count++;
      return actual.timingSafeEqual(a, b);
    },
  };
});

const ADMIN_KEY = 'config-admin-key-0123456789';
const silent = pino({ level: 'silent' });

/** A pino logger whose lines the test can read. */
function capturedLogger() {
  const lines: Array<{ level: number; msg: string }> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      callback();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

describe('ApiKeyStore with the registry in Redis', () => {
  let redis: RedisConnection;
  const stores: ApiKeyStore[] = [];
  const extraConnections: RedisConnection[] = [];

  beforeAll(async () => {
    redis = createRedis(testRedis(), 'request');
    await waitUntilReady(redis);
  });
  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
  });
  afterAll(async () => {
    await Promise.all(extraConnections.map(closeRedis));
    await closeRedis(redis);
  });

  async function started(keys: ApiKeyKeys, config: Parameters<typeof ApiKeyStore.fromConfig>[0] = {}, options: { connection?: RedisConnection; logger?: pino.Logger } = {}) {
    const store = ApiKeyStore.fromConfig(config);
    await store.start({ redis: options.connection ?? redis, keys, logger: options.logger ?? silent });
    stores.push(store);
    return store;
  }

  it('runs open until the first key, which must be an admin key and closes it at once', async () => {
    const keys = redisKeys(uniquePrefix('keys')).apiKeys;
    const store = await started(keys);
    expect(store.open).toBe(true);
    expect(store.authenticate(undefined)).toMatchObject({ tenant: 'default', admin: true });

    await expect(store.create({ tenant: 'acme', admin: false })).rejects.toMatchObject({ code: 'invalid_request', message: /admin: the first key must be an admin key/ });
    expect(store.open).toBe(true);

    const { key, entry } = await store.create({ tenant: 'ops', admin: true, name: 'bootstrap' });
    expect(key).toMatch(/^sy_[A-Za-z0-9_-]{43}$/);
    expect(entry).toMatchObject({ tenant: 'ops', admin: true, name: 'bootstrap', source: 'redis', prefix: key.slice(0, 10), rotated_at: null, previous: null });
    expect(store.open).toBe(false);
    expect(store.authenticate(key)).toMatchObject({ tenant: 'ops', admin: true });
    expect(store.authenticate(undefined)).toBeUndefined();
    expect(store.authenticate(`${key}x`)).toBeUndefined();

    // Only the digest is stored.
    const stored = Object.values(await redis.hgetall(keys.records)).join('\n');
    expect(stored).not.toContain(key);
    expect(stored).not.toContain(key.slice(10));
  });

  it('another store sees a change when the version counter moves, and only then', async () => {
    const keys = redisKeys(uniquePrefix('keys')).apiKeys;
    const writer = await started(keys, { adminApiKeys: ADMIN_KEY });
    const { key, entry } = await writer.create({ tenant: 'acme', admin: false });
    const reader = await started(keys, { adminApiKeys: ADMIN_KEY });
    expect(reader.authenticate(key)).toMatchObject({ tenant: 'acme', admin: false });

    // A record written behind the registry's back, version untouched: not picked up...
    const record = JSON.parse((await redis.hget(keys.records, entry.id))!);
    await redis.hset(keys.records, entry.id, JSON.stringify({ ...record, tenant: 'beta' }));
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(reader.authenticate(key)).toMatchObject({ tenant: 'acme', admin: false });
    // ...until the version moves.
    await redis.incr(keys.version);
    await expect.poll(() => reader.authenticate(key), { timeout: 1_000, interval: 20 }).toMatchObject({ tenant: 'beta', admin: false });
  });

  it('a revoked key is refused at once by the store that revoked it and within a second by another', async () => {
    const keys = redisKeys(uniquePrefix('keys')).apiKeys;
    const a = await started(keys, { adminApiKeys: ADMIN_KEY });
    const b = await started(keys, { adminApiKeys: ADMIN_KEY });
    const { key, entry } = await a.create({ tenant: 'acme', admin: false });
    await expect.poll(() => b.authenticate(key), { timeout: 1_000, interval: 20 }).toMatchObject({ tenant: 'acme', admin: false });

    const revoked = await a.revoke(entry.id);
    const revokedAt = Date.now();
    expect(revoked).toMatchObject({ id: entry.id, tenant: 'acme' });
    expect(a.authenticate(key)).toBeUndefined();
    await expect.poll(() => b.authenticate(key), { timeout: 1_000, interval: 10 }).toBeUndefined();
    expect(Date.now() - revokedAt).toBeLessThan(1_000);
    expect((await a.list()).map((listed) => listed.id)).not.toContain(entry.id);
    await expect(a.revoke(entry.id)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('rotation replaces the key at once, or after a grace period, keeping id, tenant and name', async () => {
    const keys = redisKeys(uniquePrefix('keys')).apiKeys;
    const store = await started(keys, { adminApiKeys: ADMIN_KEY });
    const first = await store.create({ tenant: 'acme', admin: false, name: 'ci' });

    const second = await store.rotate(first.entry.id);
    expect(second.key).not.toBe(first.key);
    expect(second.entry).toMatchObject({ id: first.entry.id, tenant: 'acme', admin: false, name: 'ci', previous: null, created_at: first.entry.created_at });
    expect(second.entry.rotated_at).not.toBeNull();
    expect(store.authenticate(first.key)).toBeUndefined();
    expect(store.authenticate(second.key)).toMatchObject({ tenant: 'acme', admin: false });

    const third = await store.rotate(first.entry.id, 1);
    expect(third.entry.previous).toMatchObject({ prefix: second.key.slice(0, 10) });
    expect(store.authenticate(second.key)).toMatchObject({ tenant: 'acme', admin: false });
    expect(store.authenticate(third.key)).toMatchObject({ tenant: 'acme', admin: false });
    // The grace ends on time, without waiting for any refresh.
    await new Promise((resolve) => setTimeout(resolve, 1_050));
    expect(store.authenticate(second.key)).toBeUndefined();
    expect(store.authenticate(third.key)).toMatchObject({ tenant: 'acme', admin: false });
    expect((await store.list()).find((entry) => entry.id === first.entry.id)?.previous).toBeNull();

    // A key still in its grace dies at the next rotation.
    const fourth = await store.rotate(first.entry.id, 60);
    const fifth = await store.rotate(first.entry.id, 60);
    expect(store.authenticate(third.key)).toBeUndefined();
    expect(store.authenticate(fourth.key)).toMatchObject({ tenant: 'acme', admin: false });
    expect(store.authenticate(fifth.key)).toMatchObject({ tenant: 'acme', admin: false });
    await expect(store.rotate('k_nope')).rejects.toMatchObject({ code: 'not_found' });
  });

  it('lists configured keys without their key; they cannot be rotated or revoked, nor can the last admin key', async () => {
    const keys = redisKeys(uniquePrefix('keys')).apiKeys;
    const seeded = await started(keys, { apiKeys: 'beta:beta-key-0123456789', adminApiKeys: ADMIN_KEY });
    const { entry } = await seeded.create({ tenant: 'acme', admin: false });
    const list = await seeded.list();
    expect(list).toEqual([
      { id: 'config-0', prefix: null, tenant: 'beta', admin: false, name: 'API_KEYS', source: 'config', created_at: null, rotated_at: null, previous: null },
      { id: 'config-1', prefix: null, tenant: 'admin', admin: true, name: 'ADMIN_API_KEYS', source: 'config', created_at: null, rotated_at: null, previous: null },
      expect.objectContaining({ id: entry.id, source: 'redis', tenant: 'acme' }),
    ]);
    expect(JSON.stringify(list)).not.toContain('beta-key-0123456789');
    for (const attempt of [seeded.revoke('config-0'), seeded.rotate('config-1')]) {
      const error = await attempt.catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ApiError);
      expect(error).toMatchObject({ code: 'key_not_revocable', status: 409, message: /comes from the configuration \((API_KEYS|ADMIN_API_KEYS)\)/ });
    }

    // Without a configured admin key, the registry's last admin key stays.
    const other = redisKeys(uniquePrefix('keys')).apiKeys;
    const store = await started(other);
    const admin = await store.create({ tenant: 'ops', admin: true });
    await expect(store.revoke(admin.entry.id)).rejects.toMatchObject({ code: 'key_not_revocable', message: /last admin key/ });
    const second = await store.create({ tenant: 'ops', admin: true });
    await store.revoke(admin.entry.id);
    expect(store.authenticate(admin.key)).toBeUndefined();
    expect(store.authenticate(second.key)).toMatchObject({ tenant: 'ops', admin: true });
  });

  it('an emptied registry does not reopen a store that saw keys', async () => {
    const keys = redisKeys(uniquePrefix('keys')).apiKeys;
    const { logger, lines } = capturedLogger();
    const store = await started(keys, {}, { logger });
    const { key } = await store.create({ tenant: 'ops', admin: true });
    // What a FLUSHALL or a Redis restarted without persistence leaves behind.
    await redis.del(keys.records, keys.version);
    await store.refresh();
    expect(store.open).toBe(false);
    expect(store.authenticate(undefined)).toBeUndefined();
    expect(store.authenticate(key)).toBeUndefined();
    expect(lines.filter((line) => /registry in Redis is empty though it held keys/.test(line.msg))).toHaveLength(1);
  });

  it('compares the presented key with every stored digest, whichever matches', async () => {
    const keys = redisKeys(uniquePrefix('keys')).apiKeys;
    const store = await started(keys, { apiKeys: 'beta:beta-key-0123456789', adminApiKeys: ADMIN_KEY });
    const one = await store.create({ tenant: 'acme', admin: false });
    const two = await store.create({ tenant: 'acme', admin: false });
    await store.rotate(two.entry.id, 60);
    // Two configured, two registered, one rotated key in its grace: five digests.
    const counts: number[] = [];
    for (const presented of ['beta-key-0123456789', one.key, two.key, 'no-such-key-0123456789']) {
      comparisons.count = 0;
      store.authenticate(presented);
      counts.push(comparisons.count);
    }
    expect(counts).toEqual([5, 5, 5, 5]);
  });

  it('keeps the last keys read when Redis goes away, logging it once', async () => {
    const keys = redisKeys(uniquePrefix('keys')).apiKeys;
    const connection = createRedis(testRedis(), 'request');
    extraConnections.push(connection);
    await waitUntilReady(connection);
    const { logger, lines } = capturedLogger();
    const store = await started(keys, {}, { connection, logger });
    const { key } = await store.create({ tenant: 'ops', admin: true });
    connection.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(store.authenticate(key)).toMatchObject({ tenant: 'ops', admin: true });
    expect(store.open).toBe(false);
    expect(lines.filter((line) => /API key registry unreadable/.test(line.msg))).toHaveLength(1);
  });

  it('answers 503 rather than guessing while the registry was never read', async () => {
    const keys = redisKeys(uniquePrefix('keys')).apiKeys;
    const dead = createRedis(`redis://127.0.0.1:${await freePort()}`, 'request', { retryStrategy: () => null });
    dead.on('error', () => undefined);
    extraConnections.push(dead);
    const open = await started(keys, {}, { connection: dead });
    expect(open.open).toBe(false);
    expect(() => open.authenticate(undefined)).toThrow(expect.objectContaining({ code: 'redis_unavailable' }));

    const configured = await started(keys, { adminApiKeys: ADMIN_KEY }, { connection: dead });
    expect(configured.authenticate(ADMIN_KEY)).toMatchObject({ tenant: 'admin', admin: true });
    // No key: refused whatever the registry holds. Another key: only the registry could say.
    expect(configured.authenticate(undefined)).toBeUndefined();
    expect(() => configured.authenticate('sy_someone-else-0123456789')).toThrow(expect.objectContaining({ code: 'redis_unavailable' }));
  });

  it('a store without Redis behaves as before: configuration only', () => {
    const store = ApiKeyStore.fromConfig({ adminApiKeys: ADMIN_KEY });
    expect(store.authenticate(ADMIN_KEY)).toMatchObject({ tenant: 'admin', admin: true });
    expect(store.authenticate('sy_unknown-0123456789')).toBeUndefined();
  });
});
