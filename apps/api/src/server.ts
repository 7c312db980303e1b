import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { isTerminalEvent, redisKeys, type StreamEvent } from '@switchyard/protocol';
import {
  AdmissionLedger,
  EventLog,
  FleetRegistry,
  JobIndex,
  QueueRegistry,
  SharedSubscriber,
  closeRedis,
  createRedis,
  rawEvent,
  waitUntilReady,
} from '@switchyard/redis';
import { Admission } from './admission.js';
import { ApiKeyStore, KEY_COOKIE, presentedKey, type Principal } from './auth.js';
import { registerBullBoard, BULL_BOARD_PATH } from './bull-board.js';
import type { ApiConfig } from './config.js';
import type { ApiContext } from './context.js';
import { ApiError, handleError } from './errors.js';
import { EventRelay } from './event-relay.js';
import { JobEventFeed } from './job-event-feed.js';
import { FleetView } from './fleet-view.js';
import { JobService } from './job-service.js';
import { Maintenance } from './maintenance.js';
import { createApiMetrics, type LedgerSnapshot } from './metrics.js';
import { registerFleetMetrics } from './fleet-metrics.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerFleetRoutes } from './routes/fleet.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerOpenAiRoutes } from './compat/openai/routes.js';
import { registerOllamaRoutes } from './compat/ollama/routes.js';

export interface Api {
  app: FastifyInstance;
  context: ApiContext;
  /** Listens on the configured host and port; resolves with the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

const DISCOVERY_INTERVAL_MS = 5_000;
const OBSERVED_JOBS_CAP = 10_000;
/** Fleet endpoints only an admin key may use (when keys are configured). */
const ADMIN_PATHS = ['/v1/agents', '/metrics', '/admin/'];

/** Builds the API: connections, services, routes. Nothing listens until `listen()`. */
export async function createApi(config: ApiConfig, deps: { logger: Logger }): Promise<Api> {
  const logger = deps.logger;
  const keys = redisKeys(config.redisPrefix);
  // Read before any connection opens: a bad keys file stops start-up with its reason.
  const keyStore = ApiKeyStore.fromConfig(config);
  if (keyStore.open) logger.warn('no API keys configured (API_KEYS, API_KEYS_FILE, ADMIN_API_KEYS): running OPEN, every caller is tenant "default" with admin rights');
  else logger.info({ keys: keyStore.size }, 'API keys configured: requests need a key');
  // Fail-fast connection for request paths (queues, reads) and a patient one for pub/sub.
  // Named so `CLIENT LIST` and MONITOR show which process a command came from.
  const redis = createRedis(config.redisUrl, 'request', { connectionName: 'sy-api' });
  const subscriberConnection = createRedis(config.redisUrl, 'worker', { connectionName: 'sy-api-sub' });
  redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
  subscriberConnection.on('error', (error) => logger.warn({ err: error }, 'redis subscriber error'));
  // Start even when Redis is down (requests answer 503 until it is back), but do not
  // answer the first requests with 503 merely because the connection is still opening.
  await waitUntilReady(redis, 2_000).catch((error) => logger.warn({ err: error }, 'starting without Redis'));

  const queues = new QueueRegistry(redis, keys);
  const events = new EventLog(redis, keys);
  const subscriber = new SharedSubscriber(subscriberConnection);
  const fleet = new FleetView(new FleetRegistry(redis, keys), config.fleetCacheMs);
  const ledger = new AdmissionLedger(redis, keys);
  const registry = new Registry();
  let jobs: JobService | undefined;
  let admission: Admission | undefined;
  const metrics = createApiMetrics(
    registry,
    async () => {
      const rows: Array<{ model: string; state: string; count: number }> = [];
      for (const [model, counts] of (await jobs?.queueCounts()) ?? []) {
        rows.push({ model, state: 'waiting', count: counts.waiting });
        rows.push({ model, state: 'active', count: counts.active });
      }
      return rows;
    },
    async (): Promise<LedgerSnapshot> => {
      const models = [...queues.opened().keys()];
      const now = Date.now();
      const stats = (await admission?.modelStats(models)) ?? new Map();
      const outcomes = await redis.hgetall(ledger.keys.outcomes);
      return {
        models: models.map((model) => {
          const entry = stats.get(model);
          return { model, oldestWaitS: entry?.oldestSubmittedAt ? (now - entry.oldestSubmittedAt) / 1000 : 0, drainPerS: entry?.drainPerS ?? 0 };
        }),
        outcomes: Object.entries(outcomes).map(([field, count]) => {
          const bar = field.indexOf('|');
          return { outcome: field.slice(0, bar), model: field.slice(bar + 1), count: Number(count) };
        }),
      };
    },
  );
  registerFleetMetrics(registry, fleet);

  admission = new Admission({ redis, ledger, fleet, keyStore, config, metrics, logger: logger.child({ component: 'admission' }) });
  jobs = new JobService({
    redis,
    keys,
    queues,
    events,
    jobIndex: new JobIndex(redis, keys, config.jobRetentionSeconds),
    admission,
    ledger,
    metrics,
    logger,
    jobRetentionSeconds: config.jobRetentionSeconds,
  });
  const maintenance = new Maintenance({
    redis,
    keys,
    ledger,
    admission,
    jobs,
    events,
    queues,
    fleet,
    metrics,
    config,
    logger: logger.child({ component: 'maintenance' }),
  });
  const feed = new JobEventFeed(subscriber, events, keys, logger);
  const relay = new EventRelay(feed);

  const observedJobs = new Set<string>();
  // One authentication per request, whoever asks (routes, the admin hook, compat routes).
  const principals = new WeakMap<FastifyRequest, Principal | null>();
  const principalOf = (request: FastifyRequest): Principal | undefined => {
    let principal = principals.get(request);
    if (principal === undefined) {
      const cookie = request.url.startsWith('/admin/');
      principal = keyStore.authenticate(presentedKey(request, { cookie })) ?? null;
      principals.set(request, principal);
    }
    return principal ?? undefined;
  };
  const context: ApiContext = {
    config,
    redis,
    keys,
    jobs,
    fleet,
    relay,
    feed,
    metrics,
    admission,
    ledger,
    keyStore,
    tenantOf: (request) => {
      const principal = principalOf(request);
      if (!principal) {
        throw new ApiError('unauthorized', 'a valid API key is required: send Authorization: Bearer <key> (or X-API-Key)');
      }
      return principal.tenant;
    },
    isAdmin: (request) => principalOf(request)?.admin === true,
    waitForJobEnd: async (jobId, ms) => {
      let resolveEnded!: (ended: boolean) => void;
      const ended = new Promise<boolean>((resolve) => (resolveEnded = resolve));
      const unsubscribe = await subscriber.subscribe(keys.jobChannel(jobId), (message) => {
        // Only the type matters here: read it off the payload's header, as the relay does.
        const event = rawEvent(message);
        if (event && isTerminalEvent(event)) resolveEnded(true);
      });
      // The caller publishes the cancellation right away; a terminal event published before
      // our subscription was confirmed is not heard live, but it is already in the log.
      void events
        .last(jobId)
        .then((last) => last && isTerminalEvent(last) && resolveEnded(true))
        .catch(() => undefined);
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
    // On close, drop keep-alive connections that carry no request (a client that aborted a
    // stream often leaves one); otherwise a graceful shutdown waits on them indefinitely.
    forceCloseConnections: 'idle',
  });
  app.setErrorHandler(handleError);
  // Fleet endpoints, /metrics and Bull Board need an admin key. Bull Board's pages and
  // their requests come from a browser that cannot add headers: a visit with ?key=<admin key>
  // sets an HttpOnly, SameSite=Strict cookie that the board's later requests carry.
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0]!;
    if (keyStore.open || !ADMIN_PATHS.some((prefix) => (prefix.endsWith('/') ? path.startsWith(prefix) : path === prefix))) return;
    const principal = principalOf(request);
    // Answered here rather than thrown: Bull Board's plugin has an error handler of its own.
    if (!principal || !principal.admin) {
      const error = principal
        ? new ApiError('forbidden', `tenant ${principal.tenant}'s key is not an admin key`)
        : new ApiError('unauthorized', 'this endpoint needs an admin API key: send Authorization: Bearer <key>');
      handleError(error, request, reply);
      return reply;
    }
    const query = request.query as Record<string, unknown> | undefined;
    if (request.url.startsWith(BULL_BOARD_PATH) && typeof query?.key === 'string') {
      void reply.header('Set-Cookie', `${KEY_COOKIE}=${encodeURIComponent(query.key)}; Path=/admin; HttpOnly; SameSite=Strict`);
    }
  });
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
  registerAdminRoutes(app, context);
  registerOpenAiRoutes(app, context);
  registerOllamaRoutes(app, context);
  await queues.discover().catch((error) => logger.warn({ err: error }, 'could not list known model queues yet'));
  await registerBullBoard(app, queues);
  const discovery = setInterval(() => void queues.discover().catch(() => undefined), DISCOVERY_INTERVAL_MS);
  discovery.unref();
  maintenance.start();

  return {
    app,
    context,
    listen: async () => {
      const address = await app.listen({ host: config.host, port: config.port });
      return address.replace('[::]', '127.0.0.1').replace('0.0.0.0', '127.0.0.1');
    },
    close: async () => {
      clearInterval(discovery);
      await maintenance.stop();
      await app.close();
      await queues.close();
      await closeRedis(subscriberConnection);
      await closeRedis(redis);
    },
  };
}
