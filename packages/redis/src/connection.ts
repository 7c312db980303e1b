import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { ErrorThrottle } from './connection-errors.js';
import { credentialOptions, ioredisArgsOf, type RedisNode, type RedisTarget } from './redis-target.js';

export { describeRedisTarget, redisTarget, type RedisNode, type RedisTarget } from './redis-target.js';

/**
 * How a connection behaves when Redis is slow or gone.
 * - `request`: on an HTTP path. Fails fast (no offline queue, one retry) so the API can
 *   answer 503 at once instead of hanging a client; reconnects by itself in the background.
 * - `worker`: agents and subscribers. Waits for Redis forever, as BullMQ requires
 *   (`maxRetriesPerRequest: null`).
 */
export type ConnectionRole = 'request' | 'worker';

/** Least time between two reports of the same connection error by one client. */
export const CONNECTION_ERROR_INTERVAL_MS = 10_000;

/**
 * A client whose `error` event fires for the first failure of each kind and then at most
 * once per `CONNECTION_ERROR_INTERVAL_MS`, the error carrying `repeats` (how many like it
 * were held back). ioredis emits one per reconnect attempt, and every listener — ours and
 * BullMQ's, which re-emits it on each worker and queue — would log each; folding them here
 * quiets all of them. A ready connection starts afresh, so the next outage shows at once.
 */
class ReportingRedis extends Redis {
  // Not a #private field: ioredis may emit from inside super(), before fields exist.
  private throttle: ErrorThrottle | undefined;

  constructor(url: string | undefined, options: RedisOptions, errorIntervalMs: number) {
    // ioredis types the reply mapping as this class's ("legacy"); createRedis never sets another.
    // No URL under Sentinel: ioredis skips an undefined argument and takes the options alone.
    super(url as string, options as RedisOptions & { replyMapping?: 'legacy' });
    this.throttle = new ErrorThrottle(errorIntervalMs);
    this.on('ready', () => this.throttle?.reset());
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    // Before the throttle exists (an error from inside super()), everything goes out.
    if (event === 'error' && this.throttle && !this.throttle.admit(args[0])) return true;
    return super.emit(event, ...args);
  }
}

/**
 * A connection to one Redis or to a Redis Cluster. Both share the command API; code that
 * needs one or the other's own methods asks `isCluster`.
 */
export type RedisConnection = Redis | Cluster;

/** Whether a connection is a Redis Cluster client. */
export function isCluster(redis: RedisConnection): redis is Cluster {
  return (redis as { isCluster?: boolean }).isCluster === true;
}

/** The same error folding as {@link ReportingRedis}, for a cluster client (it emits one per node and refresh). */
class ReportingCluster extends Cluster {
  private throttle: ErrorThrottle | undefined;

  constructor(nodes: RedisNode[], options: ClusterOptions, errorIntervalMs: number) {
    // As for ReportingRedis: the reply mapping is the class's ("legacy"); createRedis never sets another.
    super(nodes, options as ClusterOptions & { redisOptions?: { replyMapping?: 'legacy' } });
    this.throttle = new ErrorThrottle(errorIntervalMs);
    this.on('ready', () => this.throttle?.reset());
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    // Before the throttle exists (an error from inside super()), everything goes out.
    if (event === 'error' && this.throttle && !this.throttle.admit(args[0])) return true;
    return super.emit(event, ...args);
  }
}

/** Options of {@link createRedis} beyond ioredis's own. */
export interface ConnectionExtras {
  /**
   * Cluster only: open one subscriber connection per master for sharded pub/sub
   * (`SSUBSCRIBE`). Only a connection that listens to job channels needs it; every other
   * one would hold idle connections to each master.
   */
  shardedSubscribers?: boolean;
}

export function createRedis(
  target: RedisTarget | string,
  role: ConnectionRole,
  { shardedSubscribers = false, ...extra }: RedisOptions & ConnectionExtras = {},
  /** Tests shorten it; everyone else keeps the default. */
  errorIntervalMs = CONNECTION_ERROR_INTERVAL_MS,
): RedisConnection {
  const options: RedisOptions =
    role === 'request' ? { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2_000 } : { maxRetriesPerRequest: null, enableReadyCheck: true };
  // Back off up to 2 s between reconnects; never give up, the process recovers by itself.
  const retryStrategy = (attempt: number) => Math.min(50 * 2 ** attempt, 2_000);
  const common: RedisOptions = {
    ...options,
    retryStrategy,
    lazyConnect: false,
    // A rejected command's stack then shows who sent it, not only ioredis's internals (the
    // test run sets this: an unhandled "Connection is closed." must name its caller).
    showFriendlyErrorStack: process.env.REDIS_FRIENDLY_ERROR_STACK === '1',
    ...extra,
  };
  const resolved = typeof target === 'string' ? { url: target } : target;
  if (!('clusterNodes' in resolved)) {
    // One Redis, or the master a Sentinel group names: its address, credentials and TLS first.
    const { url, options: targetOptions } = ioredisArgsOf(resolved);
    return new ReportingRedis(
      url,
      {
        ...targetOptions,
        // A write refused as READONLY reached a replica: the master this connection was on was
        // demoted (a failover) while the connection stayed up. Reconnect (to the master the
        // sentinels name now, or the address a managed Redis moved) and send the command again.
        reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 2 : false),
        ...common,
      },
      errorIntervalMs,
    );
  }
  // The cluster takes these itself (retries: clusterRetryStrategy); its nodes may not.
  const { enableOfflineQueue, lazyConnect, showFriendlyErrorStack, retryStrategy: _perNode, ...nodeOptions } = common;
  // Each node connection carries the target's credentials and TLS (REDIS_PASSWORD, REDIS_TLS).
  const redisOptions = { ...credentialOptions(resolved), ...nodeOptions };
  return new ReportingCluster(
    [...resolved.clusterNodes],
    {
      // The cluster client keeps its own offline queue and reconnects as a whole; its nodes'
      // per-command options (retries, timeouts, name) go to each node connection.
      redisOptions,
      ...(enableOfflineQueue !== undefined && { enableOfflineQueue }),
      ...(lazyConnect !== undefined && { lazyConnect }),
      ...(showFriendlyErrorStack !== undefined && { showFriendlyErrorStack }),
      clusterRetryStrategy: retryStrategy,
      // A node that restarts without its slots moving comes back without a MOVED to tell us.
      clusterNodeRetryStrategy: retryStrategy,
      shardedSubscribers,
    },
    errorIntervalMs,
  );
}

/** Resolves once the connection is ready, rejects after `timeoutMs`. */
export async function waitUntilReady(redis: RedisConnection, timeoutMs = 5_000): Promise<void> {
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Redis not ready after ${timeoutMs} ms (status ${redis.status})`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      redis.off('ready', onReady);
    };
    redis.on('ready', onReady);
  });
}

/** Closes a connection politely, falling back to a hard disconnect if QUIT cannot be sent. */
export async function closeRedis(redis: RedisConnection): Promise<void> {
  if (redis.status === 'end') return;
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}
