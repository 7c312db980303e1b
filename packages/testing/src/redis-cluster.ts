import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { findOnPath, spawnRedisServer } from './redis-server.js';

const run = promisify(execFile);

/** A Redis Cluster of masters spawned on loopback for one test file, and how to take it down. */
export interface RedisClusterHandle {
  /** Every master, as `REDIS_CLUSTER_NODES` lists them. */
  nodes: Array<{ host: string; port: number }>;
  /** The same, `host:port,…`. */
  nodesList: string;
  /** The servers' processes (a benchmark kills them if it dies). */
  children: ChildProcess[];
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  /** Masters (each holds a third of the slots with 3); Redis needs at least 3. */
  masters?: number;
  /** How long `cluster_state:ok` may take on every node. */
  timeoutMs?: number;
}

/**
 * Spawns a Redis Cluster of `masters` masters and no replicas: one `redis-server
 * --cluster-enabled yes` per master on a free port, its node file in a temporary directory,
 * joined and given the slots by `redis-cli --cluster create`. Resolves once every node says
 * `cluster_state:ok` and knows every other, so a client's first slot map is the final one.
 */
export async function spawnRedisCluster(options: RedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const masters = options.masters ?? 3;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const redisCli = findOnPath('redis-cli');
  if (!redisCli) throw new Error('redis-cli was not found on PATH (Debian: apt-get install redis-tools)');
  const dir = await mkdtemp(join(tmpdir(), 'sy-cluster-'));
  const servers: Array<Awaited<ReturnType<typeof spawnRedisServer>>> = [];
  const stop = async () => {
    await Promise.all(servers.map((server) => server.stop()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      servers.push(
        await spawnRedisServer(undefined, {
          settings: {
            'cluster-enabled': 'yes',
            'cluster-config-file': join(dir, `nodes-${i}.conf`),
            'cluster-node-timeout': '5000',
            dir,
          },
        }),
      );
    }
    const nodes = servers.map((server) => ({ host: '127.0.0.1', port: Number(new URL(server.url).port) }));
    await run(redisCli, ['--cluster', 'create', ...nodes.map((node) => `${node.host}:${node.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      timeout: timeoutMs,
    });
    await waitForClusterOk(
      servers.map((server) => server.url),
      masters,
      timeoutMs,
    );
    return { nodes, nodesList: nodes.map((node) => `${node.host}:${node.port}`).join(','), children: servers.map((server) => server.child), stop };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}

/** Polls `CLUSTER INFO` on every node until each says ok and counts every master. */
async function waitForClusterOk(urls: string[], masters: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const clients = urls.map((url) => new Redis(url, { maxRetriesPerRequest: 0, lazyConnect: true }));
  try {
    for (const client of clients) await client.connect();
    let last = '';
    while (Date.now() < deadline) {
      const infos = await Promise.all(clients.map((client) => client.cluster('INFO')));
      last = infos.join(' | ');
      if (infos.every((info) => /cluster_state:ok/.test(info) && new RegExp(`cluster_known_nodes:${masters}\\b`).test(info))) return;
      await sleep(100);
    }
    throw new Error(`the Redis Cluster was not ok within ${timeoutMs} ms: ${last.replace(/\r?\n/g, ' ')}`);
  } finally {
    for (const client of clients) client.disconnect();
  }
}
