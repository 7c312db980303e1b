import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { findOnPath, freePort, spawnRedisServer } from './redis-server.js';
import type { TestCertificates } from './test-certificates.js';

/** One spawned process of the group: a data node or a sentinel. */
export interface GroupProcess {
  /** The port clients use, and sentinels name (the TLS port when the group runs TLS). */
  port: number;
  /** Plain-TCP URL for the test's own control connections (also open under TLS). */
  url: string;
  child: ChildProcess;
}

/**
 * A Sentinel group on loopback, spawned for a test: a master, its replica and three
 * sentinels (quorum 2), with failure detection set low so a failover takes seconds. Every
 * wait is on a condition the servers report (replication link up, sentinels knowing each
 * other and the replica, the master they name), never on a fixed delay.
 */
export interface SentinelGroup {
  masterName: string;
  /** The data nodes as spawned: `nodes[0]` was the master, `nodes[1]` its replica. */
  nodes: GroupProcess[];
  sentinels: GroupProcess[];
  /** `host:port,…` of the sentinels, as `REDIS_SENTINELS` takes them. */
  sentinelList: string;
  /** The port of the master the sentinels name now (asks each until one answers). */
  masterPort(): Promise<number>;
  /** Resolves once every sentinel names the node on `port` as the master. */
  waitForMaster(port: number, timeoutMs?: number): Promise<void>;
  /** Resolves once `replica` has its replication link up. */
  waitForReplicaLink(replica: GroupProcess, timeoutMs?: number): Promise<void>;
  /** SIGKILL (no shutdown, no last write), and waits for the exit. */
  kill(node: GroupProcess): Promise<void>;
  stop(): Promise<void>;
}

export interface SentinelGroupOptions {
  masterName?: string;
  /** `sentinel down-after-milliseconds`: how long a silent master takes to be declared down. */
  downAfterMs?: number;
  /** `sentinel failover-timeout`. */
  failoverTimeoutMs?: number;
  /**
   * TLS everywhere clients and servers meet: data nodes and sentinels listen on a TLS port
   * (the one sentinels name), replicate and monitor over TLS. Their plain ports stay open for
   * the test's own control connections only.
   */
  tls?: TestCertificates;
}

/** A client for one question that never retries (a dead server must answer "no" at once). */
function oneShot(port: number): Redis {
  // Always the plain port: see GroupProcess.url.
  const client = new Redis({
    port,
    host: '127.0.0.1',
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1_000,
    enableOfflineQueue: true,
  });
  client.on('error', () => undefined);
  return client;
}

async function ask<T>(port: number, question: (client: Redis) => Promise<T>): Promise<T | undefined> {
  const client = oneShot(port);
  try {
    await client.connect();
    return await question(client);
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

/** Polls `check` every 50 ms until it holds; the error names what was awaited. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`sentinel group: ${what} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** SENTINEL MASTER's flat field list as an object. */
function fields(reply: unknown): Record<string, string> {
  const list = Array.isArray(reply) ? (reply as string[]) : [];
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i]!] = list[i + 1]!;
  return out;
}

const plainPort = (process: GroupProcess) => Number(new URL(process.url).port);

const waitForReplicaLink = (replica: GroupProcess, timeoutMs = 10_000) =>
  until(
    `the replica on ${replica.port} did not report its link up`,
    async () => /master_link_status:up/.test((await ask(plainPort(replica), (c) => c.info('replication'))) ?? ''),
    timeoutMs,
  );

export async function spawnSentinelGroup(options: SentinelGroupOptions = {}): Promise<SentinelGroup> {
  const binary = findOnPath('redis-server');
  if (!binary) throw new Error('redis-server was not found on PATH');
  const masterName = options.masterName ?? 'sy-test';
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-group-'));
  const nodes: GroupProcess[] = [];
  const sentinels: GroupProcess[] = [];
  const all = () => [...nodes, ...sentinels];
  const stop = async () => {
    await Promise.all(
      all().map(async ({ child }) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = once(child, 'exit');
        child.kill('SIGKILL');
        await gone;
      }),
    );
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const tls = options.tls;
    // Under TLS: the TLS port is the one the servers announce and sentinels name.
    const tlsSettings = async (): Promise<{ port?: number; settings: Record<string, string> }> => {
      if (!tls) return { settings: {} };
      const port = await freePort();
      return {
        port,
        settings: {
          'tls-port': String(port),
          'tls-cert-file': tls.certFile,
          'tls-key-file': tls.keyFile,
          'tls-ca-cert-file': tls.caFile,
          'tls-auth-clients': 'no',
          'tls-replication': 'yes',
        },
      };
    };
    const masterTls = await tlsSettings();
    // `dir`: a replica's full sync writes the master's RDB there, not in the working directory.
    const master = await spawnRedisServer(binary, { settings: { dir, ...masterTls.settings } });
    const masterPlain = Number(new URL(master.url).port);
    const masterPort = masterTls.port ?? masterPlain;
    nodes.push({ port: masterPort, url: master.url, child: master.child });
    const replicaTls = await tlsSettings();
    const replica = await spawnRedisServer(binary, { settings: { dir, ...replicaTls.settings, replicaof: ['127.0.0.1', String(masterPort)] } });
    const replicaNode = { port: replicaTls.port ?? Number(new URL(replica.url).port), url: replica.url, child: replica.child };
    nodes.push(replicaNode);
    // Linked before the sentinels start: their first INFO of the master then lists the replica.
    await waitForReplicaLink(replicaNode);

    for (let i = 0; i < 3; i++) {
      const plain = await freePort();
      const sentinelTls = await tlsSettings();
      const port = sentinelTls.port ?? plain;
      const file = join(dir, `sentinel-${plain}.conf`);
      writeFileSync(
        file,
        [
          `port ${plain}`,
          ...Object.entries(sentinelTls.settings).map(([name, value]) => `${name} ${value}`),
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
          `sentinel down-after-milliseconds ${masterName} ${options.downAfterMs ?? 1_000}`,
          `sentinel failover-timeout ${masterName} ${options.failoverTimeoutMs ?? 3_000}`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      const child = spawn(binary, [file, '--sentinel'], { stdio: 'ignore' });
      sentinels.push({ port, url: `redis://127.0.0.1:${plain}`, child });
    }
    // Each sentinel knows the replica and the other two: a failover can be agreed on and has somewhere to go.
    for (const sentinel of sentinels) {
      await until(
        `sentinel ${sentinel.port} did not see the replica and both other sentinels`,
        async () => {
          const master = fields(await ask(plainPort(sentinel), (c) => c.call('SENTINEL', 'MASTER', masterName)));
          return Number(master['num-slaves']) >= 1 && Number(master['num-other-sentinels']) >= 2;
        },
        15_000,
      );
    }
  } catch (error) {
    await stop();
    throw error;
  }

  const namedBy = async (sentinel: GroupProcess) => {
    const reply = await ask(plainPort(sentinel), (c) => c.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName));
    return Array.isArray(reply) ? Number(reply[1]) : undefined;
  };
  return {
    masterName,
    nodes,
    sentinels,
    sentinelList: sentinels.map(({ port }) => `127.0.0.1:${port}`).join(','),
    masterPort: async () => {
      for (const sentinel of sentinels) {
        const port = await namedBy(sentinel);
        if (port !== undefined) return port;
      }
      throw new Error('sentinel group: no sentinel answered');
    },
    waitForMaster: (port, timeoutMs = 20_000) =>
      until(`the sentinels did not all name port ${port} the master`, async () => (await Promise.all(sentinels.map(namedBy))).every((named) => named === port), timeoutMs),
    waitForReplicaLink,
    kill: async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = once(child, 'exit');
      child.kill('SIGKILL');
      await gone;
    },
    stop,
  };
}
