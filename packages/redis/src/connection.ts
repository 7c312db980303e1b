import { Redis, type RedisOptions } from 'ioredis';

/**
 * How a connection behaves when Redis is slow or gone.
 * - `request`: on an HTTP path. Fails fast (no offline queue, one retry) so the API can
 *   answer 503 at once instead of hanging a client; reconnects by itself in the background.
 * - `worker`: agents and subscribers. Waits for Redis forever, as BullMQ requires
 *   (`maxRetriesPerRequest: null`).
 */
export type ConnectionRole = 'request' | 'worker';

export function createRedis(url: string, role: ConnectionRole, extra: RedisOptions = {}): Redis {
  const options: RedisOptions =
    role === 'request'
      ? { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2_000 }
      : { maxRetriesPerRequest: null, enableReadyCheck: true };
  const redis = new Redis(url, {
    ...options,
    // Back off up to 2 s between reconnects; never give up, the process recovers by itself.
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, 2_000),
    lazyConnect: false,
    // A rejected command's stack then shows who sent it, not only ioredis's internals (the
    // test run sets this: an unhandled "Connection is closed." must name its caller).
    showFriendlyErrorStack: process.env.REDIS_FRIENDLY_ERROR_STACK === '1',
    ...extra,
  });
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
