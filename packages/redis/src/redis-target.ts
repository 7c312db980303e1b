import { readFileSync } from 'node:fs';
import type { RedisOptions } from 'ioredis';
import { z } from 'zod';
import { EnvFlag } from '@switchyard/protocol';

/**
 * Which Redis a process talks to, parsed once from its configuration: the one seam between
 * connection settings and ioredis's options. Every connection (commands, subscribers,
 * BullMQ's queues and workers, which duplicate the connection they are given) is made by
 * `createRedis` from a target, so all of them follow a Sentinel failover alike.
 *
 * - `{ url }`: one Redis (`REDIS_URL`; `rediss://` is TLS).
 * - `{ clusterNodes }`: the seed nodes of a Redis Cluster (`REDIS_CLUSTER_NODES`).
 * - `{ sentinels, masterName }`: the master of a Sentinel group (`REDIS_SENTINELS` +
 *   `REDIS_SENTINEL_MASTER`). ioredis asks the sentinels for the master's address on every
 *   (re)connect, checks the role of what it reached, and with `failoverDetector` drops its
 *   connection as soon as a sentinel announces `+switch-master`.
 *
 * All three take the data connections' credentials and TLS (`REDIS_USERNAME`,
 * `REDIS_PASSWORD`, `REDIS_TLS`, `REDIS_TLS_CA_FILE`).
 */
export type RedisTarget = SingleRedisTarget | ClusterRedisTarget | SentinelRedisTarget;

/** TLS towards a server: on when present; `ca` replaces the system's roots (a private CA). */
export interface RedisTls {
  ca?: string;
}

/** What every mode's data connections may carry. */
export interface RedisCredentials {
  username?: string;
  password?: string;
  /** TLS for the data connections (the master's, or every cluster node's). */
  tls?: RedisTls;
}

export interface SingleRedisTarget extends RedisCredentials {
  url: string;
}

export interface ClusterRedisTarget extends RedisCredentials {
  clusterNodes: readonly RedisNode[];
}

export interface SentinelRedisTarget extends RedisCredentials {
  sentinels: readonly HostPort[];
  /** The name the sentinels monitor the master under (`sentinel monitor <name> …`). */
  masterName: string;
  sentinelUsername?: string;
  sentinelPassword?: string;
  /** TLS for the connections to the sentinels themselves. */
  sentinelTls?: RedisTls;
}

export interface HostPort {
  host: string;
  port: number;
}

/** A `host:port` of `REDIS_CLUSTER_NODES`. */
export type RedisNode = HostPort;

/** Sentinel's own default port, for an address given without one. */
export const SENTINEL_DEFAULT_PORT = 26379;

const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})?)*|\[[0-9A-Fa-f:.]+\])$/;

/** `host:port` (or `[v6]:port`, or a host alone: port 26379) → its parts; a string naming the problem when it is not one. */
export function parseHostPort(text: string, defaultPort = SENTINEL_DEFAULT_PORT): HostPort | string {
  const item = text.trim();
  if (item.includes('://')) return `${JSON.stringify(item)} is not host:port (write the address without a scheme)`;
  // `[::1]:26379`, `[::1]`, `host:26379`, `host`: the port is what follows the last ':' outside brackets.
  const parts = /^(\[[^\]]*\]|[^:[\]]*)(?::(.*))?$/.exec(item);
  const host = parts?.[1] ?? '';
  if (host === '' || !HOST.test(host)) return `${JSON.stringify(item)} is not host:port (a host name or address, then an optional :port)`;
  const bare = host.replace(/^\[|\]$/g, '');
  const portText = parts?.[2];
  if (portText === undefined) return { host: bare, port: defaultPort };
  const port = Number(portText);
  if (!/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) return `${JSON.stringify(item)} has no valid port (1-65535 after the ':')`;
  return { host: bare, port };
}

/** `host:port,host:port` (or a list of them, from code) → addresses; each bad item is named. */
export const SentinelAddresses = z
  .union([z.string(), z.array(z.union([z.string(), z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) })]))])
  .transform((value, ctx): HostPort[] => {
    const items = typeof value === 'string' ? value.split(',').filter((item) => item.trim() !== '') : value;
    const parsed: HostPort[] = [];
    for (const item of items) {
      const address = typeof item === 'string' ? parseHostPort(item) : item;
      if (typeof address === 'string') ctx.addIssue({ code: 'custom', message: `${address}; write the sentinels as host:port,host:port` });
      else parsed.push(address);
    }
    if (items.length === 0) ctx.addIssue({ code: 'custom', message: 'lists no sentinel; write them as host:port,host:port' });
    return parsed;
  });

/**
 * The connection settings both the API and the agents read (spread into their zod configs,
 * with {@link REDIS_CONNECTION_ENV} into their variable names, and checked by
 * {@link checkRedisConnection}). `redisUrl` stays each app's own field: its default differs.
 */
export const RedisConnectionFields = {
  redisSentinels: SentinelAddresses.optional().describe(
    'Sentinel mode: the sentinels, `host:port,…` (port 26379 when left out). With `REDIS_SENTINEL_MASTER`, connections go to the master the sentinels name and follow a failover; `REDIS_URL` is then not set. See [operations](operations.md#redis-high-availability-sentinel).',
  ),
  redisSentinelMaster: z
    .string()
    .min(1)
    .optional()
    .describe('Sentinel mode: the master group name the sentinels monitor (`sentinel monitor <name> …`); required with `REDIS_SENTINELS`.'),
  redisSentinelUsername: z.string().min(1).optional().describe('Sentinel mode: the ACL user of the sentinels themselves (`sentinel sentinel-user`), when they require one.'),
  redisSentinelPassword: z
    .string()
    .min(1)
    .optional()
    .describe('Sentinel mode: the password of the sentinels themselves (`requirepass` of the sentinels), when they require one.'),
  redisSentinelTls: EnvFlag.default(false).describe('Sentinel mode, `1`: connect to the sentinels over TLS (their `tls-port`).'),
  redisUsername: z
    .string()
    .min(1)
    .optional()
    .describe("Redis ACL user of the data connections (the master's); in single mode instead of a user in `REDIS_URL` (set one of the two)."),
  redisPassword: z
    .string()
    .min(1)
    .optional()
    .describe(
      "Redis password of the data connections (the master's and, under Sentinel, its replicas' `requirepass`); in single mode instead of a password in `REDIS_URL` (set one of the two), kept apart so it can come from a secret.",
    ),
  redisTls: EnvFlag.default(false).describe(
    '`1`: TLS to Redis (data connections). In single mode a `rediss://` URL does the same; under Sentinel and Cluster this is the only switch.',
  ),
  redisTlsCaFile: z
    .string()
    .min(1)
    .optional()
    .describe("PEM file of the CA(s) that signed the TLS certificates of Redis and the sentinels (a private CA); unset: the system's roots."),
};

const RedisConnectionObject = z.object(RedisConnectionFields);
/** The settings as parsed, with the app's `redisUrl` and `redisClusterNodes`; a URL alone will do. */
export type RedisConnectionSettings = Partial<z.output<typeof RedisConnectionObject>> & {
  redisUrl?: string | undefined;
  redisClusterNodes?: readonly RedisNode[] | undefined;
};

export const REDIS_CONNECTION_ENV = {
  redisSentinels: 'REDIS_SENTINELS',
  redisSentinelMaster: 'REDIS_SENTINEL_MASTER',
  redisSentinelUsername: 'REDIS_SENTINEL_USERNAME',
  redisSentinelPassword: 'REDIS_SENTINEL_PASSWORD',
  redisSentinelTls: 'REDIS_SENTINEL_TLS',
  redisUsername: 'REDIS_USERNAME',
  redisPassword: 'REDIS_PASSWORD',
  redisTls: 'REDIS_TLS',
  redisTlsCaFile: 'REDIS_TLS_CA_FILE',
} as const satisfies Record<keyof typeof RedisConnectionFields, string>;

/**
 * The checks across fields (zod `superRefine`): exactly one mode, both halves of Sentinel,
 * credentials in one place. Each issue's path is the field to fix, so the app's error names
 * its variable.
 */
export function checkRedisConnection(settings: RedisConnectionSettings, ctx: z.RefinementCtx): void {
  const issue = (field: keyof RedisConnectionSettings, message: string) => ctx.addIssue({ code: 'custom', path: [field], message });
  const sentinel = settings.redisSentinels !== undefined || settings.redisSentinelMaster !== undefined;
  const cluster = settings.redisClusterNodes !== undefined && settings.redisClusterNodes.length > 0;
  if (sentinel && cluster) issue('redisClusterNodes', 'set together with REDIS_SENTINELS: a Sentinel group and a Redis Cluster are two setups; unset one');
  if (settings.redisSentinels !== undefined && settings.redisSentinelMaster === undefined) {
    issue('redisSentinelMaster', 'required with REDIS_SENTINELS: set it to the name the sentinels monitor the master under (`sentinel monitor <name> …`)');
  }
  if (settings.redisSentinelMaster !== undefined && settings.redisSentinels === undefined) {
    issue('redisSentinels', 'required with REDIS_SENTINEL_MASTER: set it to the sentinels, host:port,host:port');
  }
  if (sentinel && settings.redisUrl !== undefined) {
    issue(
      'redisUrl',
      'set together with REDIS_SENTINELS: unset one of them (under Sentinel the master comes from the sentinels; its user and password go in REDIS_USERNAME and REDIS_PASSWORD, TLS in REDIS_TLS)',
    );
  }
  if (!sentinel && !cluster && settings.redisUrl === undefined) issue('redisUrl', 'required: set REDIS_URL, or REDIS_SENTINELS and REDIS_SENTINEL_MASTER');
  if (!sentinel && !cluster && settings.redisUrl !== undefined) {
    const url = safeUrl(settings.redisUrl);
    if (url?.password && settings.redisPassword !== undefined) issue('redisPassword', 'REDIS_URL carries a password too: keep one of them');
    if (url?.username && settings.redisUsername !== undefined) issue('redisUsername', 'REDIS_URL carries a user too: keep one of them');
  }
}

/** `superRefine` parameters: run the check even when other fields failed, so one start names every problem. */
export const REDIS_CONNECTION_CHECK = { when: (payload: { value: unknown }) => typeof payload.value === 'object' && payload.value !== null };

function safeUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

/**
 * The target of checked settings: Sentinel when its settings are given, else the cluster
 * nodes when any are listed, else the URL. Reads `REDIS_TLS_CA_FILE` (so a file that cannot
 * be read stops start-up with one line naming it, not a TLS error per reconnect).
 */
export function redisTarget(settings: RedisConnectionSettings, readFile: (path: string) => string = (path) => readFileSync(path, 'utf8')): RedisTarget {
  let ca: string | undefined;
  if (settings.redisTlsCaFile !== undefined) {
    try {
      ca = readFile(settings.redisTlsCaFile);
    } catch (error) {
      throw new Error(
        `REDIS_TLS_CA_FILE: cannot read ${settings.redisTlsCaFile} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): set it to a readable PEM file of the CA, or unset it`,
      );
    }
  }
  const tls = (on: boolean | undefined): RedisTls | undefined => (on ? { ...(ca !== undefined && { ca }) } : undefined);
  const credentials: RedisCredentials = {
    ...(settings.redisUsername !== undefined && { username: settings.redisUsername }),
    ...(settings.redisPassword !== undefined && { password: settings.redisPassword }),
  };
  if (settings.redisSentinels !== undefined && settings.redisSentinelMaster !== undefined) {
    const dataTls = tls(settings.redisTls);
    const sentinelTls = tls(settings.redisSentinelTls);
    return {
      sentinels: settings.redisSentinels,
      masterName: settings.redisSentinelMaster,
      ...credentials,
      ...(dataTls && { tls: dataTls }),
      ...(settings.redisSentinelUsername !== undefined && { sentinelUsername: settings.redisSentinelUsername }),
      ...(settings.redisSentinelPassword !== undefined && { sentinelPassword: settings.redisSentinelPassword }),
      ...(sentinelTls && { sentinelTls }),
    };
  }
  if (settings.redisClusterNodes && settings.redisClusterNodes.length > 0) {
    const dataTls = tls(settings.redisTls);
    return { clusterNodes: settings.redisClusterNodes, ...credentials, ...(dataTls && { tls: dataTls }) };
  }
  if (settings.redisUrl === undefined) throw new Error('REDIS_URL: required: set REDIS_URL, or REDIS_SENTINELS and REDIS_SENTINEL_MASTER');
  const dataTls = tls(settings.redisTls || settings.redisUrl.startsWith('rediss:'));
  return { url: settings.redisUrl, ...credentials, ...(dataTls && { tls: dataTls }) };
}

/** The options every data connection of a target takes: credentials and TLS. */
export function credentialOptions(target: RedisCredentials): RedisOptions {
  return {
    ...(target.username !== undefined && { username: target.username }),
    ...(target.password !== undefined && { password: target.password }),
    ...(target.tls && { tls: { ...target.tls } }),
  };
}

/** ioredis's arguments for a single or Sentinel target: the URL (single) and the options the target gives. */
export function ioredisArgsOf(target: SingleRedisTarget | SentinelRedisTarget): { url?: string; options: RedisOptions } {
  if ('url' in target) return { url: target.url, options: credentialOptions(target) };
  return {
    options: {
      ...credentialOptions(target),
      sentinels: target.sentinels.map(({ host, port }) => ({ host, port })),
      name: target.masterName,
      role: 'master',
      ...(target.tls && { enableTLSForSentinelMode: true }),
      ...(target.sentinelUsername !== undefined && { sentinelUsername: target.sentinelUsername }),
      ...(target.sentinelPassword !== undefined && { sentinelPassword: target.sentinelPassword }),
      ...(target.sentinelTls && { sentinelTLS: { ...target.sentinelTls } }),
      // Drop the connection as soon as a sentinel announces +switch-master, instead of
      // writing to a demoted or partitioned master until its socket breaks. Costs one
      // subscriber connection per sentinel for each connection.
      failoverDetector: true,
    },
  };
}

/** How `describeRedisTarget` starts a cluster's and a Sentinel group's description (not URLs: nothing to mask). */
export const CLUSTER_DESCRIPTION = 'cluster ';
export const SENTINEL_DESCRIPTION = 'Sentinel master ';

/**
 * The target for a log line: the URL (its password masked by the reporters, `redactRedisUrl`),
 * `cluster host:port,…`, or `Sentinel master "name" (sentinels host:port,…)`.
 */
export function describeRedisTarget(target: RedisTarget | string): string {
  if (typeof target === 'string') return target;
  const list = (nodes: readonly HostPort[]) => nodes.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port}`).join(',');
  if ('url' in target) return target.url;
  if ('clusterNodes' in target) return `${CLUSTER_DESCRIPTION}${list(target.clusterNodes)}`;
  return `${SENTINEL_DESCRIPTION}${JSON.stringify(target.masterName)} (sentinels ${list(target.sentinels)})`;
}
