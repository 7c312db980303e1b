import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { Redis } from 'ioredis';

/** A Redis the caller may use, and how to give it back. */
export interface RedisHandle {
  url: string;
  /** Where it came from, for logs: `env`, `spawned` or `container`. */
  source: 'env' | 'spawned' | 'container';
  stop(): Promise<void>;
}

/** Finds a free TCP port on loopback by binding port 0. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') return reject(new Error('no port'));
      server.close(() => resolve(address.port));
    });
  });
}

export function findOnPath(binary: string, pathEnv = process.env.PATH ?? ''): string | undefined {
  for (const dir of pathEnv.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function waitForPing(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => undefined); // reported through connect()'s rejection instead
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (error) {
      lastError = error;
      await sleep(50);
    } finally {
      client.disconnect();
    }
  }
  throw new Error(`Redis at ${url} did not answer within ${timeoutMs} ms: ${String(lastError)}`);
}

export interface RedisServerOptions {
  /** Default: a free one. A restart passes the port it had, so clients reconnect to the same URL. */
  port?: number;
  /**
   * `redis-server` settings over the defaults (`--name value`), e.g. `{ appendonly: 'yes', dir }`
   * or an evicting policy to test the start-up check; a list for a setting of several words
   * (`'rename-command': ['CONFIG', '']`).
   */
  settings?: Record<string, string | readonly string[]>;
}

/**
 * Spawns `redis-server` on a free loopback port with the settings Switchyard requires
 * (`noeviction`) and no persistence, unless `options.settings` says otherwise. Resolves once
 * it answers PING.
 */
export async function spawnRedisServer(binary = findOnPath('redis-server'), options: RedisServerOptions = {}): Promise<RedisHandle & { child: ChildProcess }> {
  if (!binary) throw new Error('redis-server was not found on PATH');
  const port = options.port ?? (await freePort());
  const settings = { save: '', appendonly: 'no', 'maxmemory-policy': 'noeviction', ...options.settings };
  const args = ['--port', String(port), '--bind', '127.0.0.1', ...Object.entries(settings).flatMap(([name, value]) => [`--${name}`, ...[value].flat()])];
  const child = spawn(binary, args, { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const exited = new Promise<never>((_, reject) => child.once('exit', (code) => reject(new Error(`redis-server exited early with code ${code}`))));
  await Promise.race([waitForPing(url, 5_000), exited]);
  exited.catch(() => undefined);
  return {
    url,
    source: 'spawned',
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
    },
  };
}

/**
 * The Redis for tests: `REDIS_URL` if set, else a `redis-server` spawned on a free port,
 * else a testcontainers Redis (imported lazily: the import alone costs ~0.6 s).
 */
export async function provideRedis(env: NodeJS.ProcessEnv = process.env): Promise<RedisHandle> {
  if (env.REDIS_URL) {
    await waitForPing(env.REDIS_URL, 5_000);
    return { url: env.REDIS_URL, source: 'env', stop: async () => undefined };
  }
  if (findOnPath('redis-server', env.PATH)) return spawnRedisServer();
  const { RedisContainer } = await import('@testcontainers/redis');
  const container = await new RedisContainer('redis:7-alpine').start();
  return { url: container.getConnectionUrl(), source: 'container', stop: async () => void (await container.stop()) };
}
