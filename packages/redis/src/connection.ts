import { Redis, type RedisOptions } from 'ioredis';
import { ErrorThrottle } from './connection-errors.js';

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

  constructor(url: string, options: RedisOptions, errorIntervalMs: number) {
    // ioredis types the reply mapping as this class's ("legacy"); createRedis never sets another.
    super(url, options as RedisOptions & { replyMapping?: 'legacy' });
    this.throttle = new ErrorThrottle(errorIntervalMs);
    this.on('ready', () => this.throttle?.reset());
  }

  override emit(event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'error') {
      const verdict = this.throttle ? this.throttle.pass(args[0]) : { repeats: 0 };
      if (!verdict) return true;
      if (verdict.repeats > 0 && args[0] instanceof Error) Object.assign(args[0], { repeats: verdict.repeats });
    }
    return super.emit(event, ...args);
  }
}

export function createRedis(
  url: string,
  role: ConnectionRole,
  extra: RedisOptions = {},
  /** Tests shorten it; everyone else keeps the default. */
  errorIntervalMs = CONNECTION_ERROR_INTERVAL_MS,
): Redis {
  const options: RedisOptions =
    role === 'request' ? { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2_000 } : { maxRetriesPerRequest: null, enableReadyCheck: true };
  const redis = new ReportingRedis(
    url,
    {
      ...options,
      // Back off up to 2 s between reconnects; never give up, the process recovers by itself.
      retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2_000),
      lazyConnect: false,
      // A rejected command's stack then shows who sent it, not only ioredis's internals (the
      // test run sets this: an unhandled "Connection is closed." must name its caller).
      showFriendlyErrorStack: process.env.REDIS_FRIENDLY_ERROR_STACK === '1',
      ...extra,
    },
    errorIntervalMs,
  );
  return redis;
}

/** Resolves once the connection is ready, rejects after `timeoutMs`. */
export async function waitUntilReady(redis: Redis, timeoutMs = 5_000): Promise<void> {
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
export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status === 'end') return;
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}
