import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { isTerminalEvent, redisKeys, type StreamEvent } from '@switchyard/protocol';
import {
  EventLog,
  FleetRegistry,
  JobIndex,
  QueueRegistry,
  SharedSubscriber,
  closeRedis,
  createRedis,
  parseEventPayload,
  waitUntilReady,
} from '@switchyard/redis';
import { registerBullBoard, BULL_BOARD_PATH } from './bull-board.js';
import type { ApiConfig } from './config.js';
import type { ApiContext } from './context.js';
import { ApiError, handleError } from './errors.js';
import { EventRelay } from './event-relay.js';
import { JobEventFeed } from './job-event-feed.js';
import { FleetView } from './fleet-view.js';
import { JobService } from './job-service.js';
import { createApiMetrics } from './metrics.js';
import { registerFleetRoutes } from './routes/fleet.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerJobRoutes } from './routes/jobs.js';

export interface Api {
  app: FastifyInstance;
  context: ApiContext;
  /** Listens on the configured host and port; resolves with the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

const DISCOVERY_INTERVAL_MS = 5_000;
const OBSERVED_JOBS_CAP = 10_000;

/** Builds the API: connections, services, routes. Nothing listens until `listen()`. */
export async function createApi(config: ApiConfig, deps: { logger: Logger }): Promise<Api> {
  const logger = deps.logger;
  const keys = redisKeys(config.redisPrefix);
  // Fail-fast connection for request paths (queues, reads) and a patient one for pub/sub.
  const redis = createRedis(config.redisUrl, 'request');
  const subscriberConnection = createRedis(config.redisUrl, 'worker');
  redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
  subscriberConnection.on('error', (error) => logger.warn({ err: error }, 'redis subscriber error'));
  // Start even when Redis is down (requests answer 503 until it is back), but do not
  // answer the first requests with 503 merely because the connection is still opening.
  await waitUntilReady(redis, 2_000).catch((error) => logger.warn({ err: error }, 'starting without Redis'));

  const queues = new QueueRegistry(redis, keys);
  const events = new EventLog(redis, keys);
  const subscriber = new SharedSubscriber(subscriberConnection);
  const fleet = new FleetView(new FleetRegistry(redis, keys), config.fleetCacheMs);
  const registry = new Registry();
  let jobs: JobService | undefined;
  const metrics = createApiMetrics(registry, async () => {
    const rows: Array<{ model: string; state: string; count: number }> = [];
    for (const [model, counts] of (await jobs?.queueCounts()) ?? []) {
      rows.push({ model, state: 'waiting', count: (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0) });
      rows.push({ model, state: 'active', count: counts.active ?? 0 });
    }
    return rows;
  });
  jobs = new JobService({
    redis,
    keys,
    queues,
    events,
    jobIndex: new JobIndex(redis, keys, config.jobRetentionSeconds),
    fleet,
    metrics,
    logger,
    jobRetentionSeconds: config.jobRetentionSeconds,
    idempotencyWindowSeconds: config.idempotencyWindowSeconds,
  });
  const feed = new JobEventFeed(subscriber, events, keys, logger);
  const relay = new EventRelay(feed);

  const observedJobs = new Set<string>();
  const context: ApiContext = {
    config,
    redis,
    keys,
    jobs,
    fleet,
    relay,
    feed,
    metrics,
    tenantOf: () => 'default',
    waitForJobEnd: async (jobId, ms) => {
      let resolveEnded!: (ended: boolean) => void;
      const ended = new Promise<boolean>((resolve) => (resolveEnded = resolve));
      const unsubscribe = await subscriber.subscribe(keys.jobChannel(jobId), (message) => {
        const event = parseEventPayload(message);
        if (event && isTerminalEvent(event)) resolveEnded(true);
      });
      const timer = setTimeout(() => resolveEnded(false), ms);
      try {
        return await ended;
      } finally {
        clearTimeout(timer);
        await unsubscribe();
      }
    },
    observeEvent: (jobId: string, model: string, event: StreamEvent) => {
      if (event.type !== 'done' || observedJobs.has(jobId)) return;
      // Several clients may watch one job; count it once per process.
      observedJobs.add(jobId);
      if (observedJobs.size > OBSERVED_JOBS_CAP) observedJobs.delete(observedJobs.values().next().value!);
      metrics.ttft.observe({ model, cold: String(event.timings.load_ms > 0) }, event.timings.ttft_ms / 1000);
    },
  };

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // A log line per request costs more than the rest of a submit; metrics count requests.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimitBytes,
    return503OnClosing: true,
  });
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => {
    const error = new ApiError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`);
    void reply.status(error.status).send(error.body());
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    if (route === '/v1/jobs/:id/events' || route.startsWith(BULL_BOARD_PATH)) return;
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
  });

  registerHealthRoutes(app, context);
  registerJobRoutes(app, context);
  registerFleetRoutes(app, context);
  await queues.discover().catch((error) => logger.warn({ err: error }, 'could not list known model queues yet'));
  await registerBullBoard(app, queues);
  const discovery = setInterval(() => void queues.discover().catch(() => undefined), DISCOVERY_INTERVAL_MS);
  discovery.unref();

  return {
    app,
    context,
    listen: async () => {
      const address = await app.listen({ host: config.host, port: config.port });
      return address.replace('[::]', '127.0.0.1').replace('0.0.0.0', '127.0.0.1');
    },
    close: async () => {
      clearInterval(discovery);
      await app.close();
      await queues.close();
      await closeRedis(subscriberConnection);
      await closeRedis(redis);
    },
  };
}
