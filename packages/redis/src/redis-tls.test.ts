/**
 * TLS through the seam, against a real redis-server with a `tls-port` and a certificate from
 * a CA made here (openssl): `rediss://` plus `REDIS_TLS_CA_FILE` connects, and without the CA
 * the same URL is refused by the certificate check (so the CA file is what made it work).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findOnPath, freePort, makeTestCertificates, spawnRedisServer } from '@switchyard/testing';
import { closeRedis, createRedis, waitUntilReady } from './connection.js';
import { redisTarget } from './redis-target.js';

const tools = findOnPath('redis-server') && findOnPath('openssl');

describe.skipIf(!tools)('TLS to Redis', () => {
  let dir: string;
  let tlsPort: number;
  let server: Awaited<ReturnType<typeof spawnRedisServer>>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'redis-tls-'));
    const certs = makeTestCertificates(dir);
    tlsPort = await freePort();
    server = await spawnRedisServer(undefined, {
      settings: {
        'tls-port': String(tlsPort),
        'tls-cert-file': certs.certFile,
        'tls-key-file': certs.keyFile,
        'tls-ca-cert-file': certs.caFile,
        'tls-auth-clients': 'no',
      },
    });
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const settings = (extra: Record<string, unknown>) => ({ redisSentinelTls: false, redisTls: false, redisUrl: `rediss://127.0.0.1:${tlsPort}`, ...extra });

  it('rediss:// with REDIS_TLS_CA_FILE connects and answers', async () => {
    const redis = createRedis(redisTarget(settings({ redisTlsCaFile: join(dir, 'ca.crt') })), 'worker');
    try {
      await waitUntilReady(redis, 10_000);
      expect(await redis.ping()).toBe('PONG');
    } finally {
      await closeRedis(redis);
    }
  });

  it('REDIS_TLS=1 makes a redis:// URL TLS too', async () => {
    const redis = createRedis(redisTarget(settings({ redisUrl: `redis://127.0.0.1:${tlsPort}`, redisTls: true, redisTlsCaFile: join(dir, 'ca.crt') })), 'worker');
    try {
      await waitUntilReady(redis, 10_000);
      expect(await redis.ping()).toBe('PONG');
    } finally {
      await closeRedis(redis);
    }
  });

  it('without the CA the certificate is refused', async () => {
    const redis = createRedis(redisTarget(settings({})), 'worker', { retryStrategy: () => null });
    const failure = new Promise<Error>((resolve) => redis.once('error', resolve));
    try {
      expect((await failure).message).toMatch(/self[- ]signed|unable to (get|verify)/i);
    } finally {
      redis.disconnect();
    }
  });
});
