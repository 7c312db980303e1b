import type { RedisConnection } from '@switchyard/redis';
import type { Logger } from 'pino';
import { ErrorThrottle, describeRedisError, isRedisUnreachable, repeatsOf } from '@switchyard/redis';

/** Least time between two log lines about the same Redis trouble, over all of an agent's connections. */
const REDIS_REPORT_INTERVAL_MS = 10_000;

/** Builds the error listener of one connection (or worker), naming it and any extra fields in the log line. */
export type RedisReporter = (connection: string, fields?: Record<string, unknown>) => (error: unknown) => void;

/**
 * How an agent reports Redis trouble. Each connection already folds its own repeats; one
 * throttle over all of them (and the workers' own connections) keeps an outage to a line
 * per interval, naming the fix. `commands` resets the throttle when it is ready again.
 */
export function reportRedisTrouble(options: { redisUrl: string; logger: Logger; commands: RedisConnection; subscriber: RedisConnection }): RedisReporter {
  const { redisUrl, logger } = options;
  const redisTrouble = new ErrorThrottle(REDIS_REPORT_INTERVAL_MS);
  const reportRedis: RedisReporter =
    (connection, fields = {}) =>
    (error) => {
      const verdict = redisTrouble.pass(error);
      if (!verdict) return;
      const repeats = verdict.repeats + repeatsOf(error);
      // A worker's other errors (a lost lock, say) are not about reaching Redis: keep their own words.
      const message = connection === 'worker' && !isRedisUnreachable(error) ? 'worker error' : describeRedisError(redisUrl, error);
      logger.warn(
        { err: error, connection, ...fields, ...(repeats > 0 && { repeats }) },
        repeats > 0 ? `${message} (${repeats} more like it since the last report)` : message,
      );
    };
  options.commands.on('error', reportRedis('commands'));
  options.subscriber.on('error', reportRedis('subscriber'));
  options.commands.on('ready', () => redisTrouble.reset());
  return reportRedis;
}
