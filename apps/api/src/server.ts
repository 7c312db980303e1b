import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { RedisConnection } from '@switchyard/redis';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { ApiErrorCode, redisKeys } from '@switchyard/protocol';
import {
  AdmissionLedger,
  EventLog,
  FleetRegistry,
  JobLifecycle,
  JobRecords,
  CachedRead,
  ModelCatalogStore,
  QueueRegistry,
  SharedSubscriber,
  StreamPresence,
  checkRedisSettingsAtStart,
  closeRedis,
  createRedis,
  describeRedisTarget,
  redisTarget,
  ReplicationBarrier,
  waitUntilReady,
} from '@switchyard/redis';
import { trackAccessDeclarations, type DeclaredRoute } from './access.js';
import { Admission } from './admission.js';
import { AdminSessions } from './admin-sessions.js';
import { ApiKeyStore } from './auth.js';
import { Backlog, UnservedDemand, registerBacklogMetrics } from './backlog.js';
import { registerBullBoard } from './bull-board.js';
import type { ApiConfig } from './config.js';
import type { ApiContext } from './context.js';
import { ApiError } from './errors.js';
import { EventRelay } from './event-relay.js';
import { registerFleetMetrics } from './fleet-metrics.js';
import { guardScrapeReads } from './scrape-guard.js';
import { FleetView } from './fleet-view.js';
import { jobEndWaiter } from './job-end.js';
import { JobEventFeed } from './job-event-feed.js';
import { JobService } from './job-service.js';
import { AgentFailover } from './agent-failover.js';
import { Maintenance } from './maintenance.js';
import { createApiMetrics, registerQueueMetrics, ttftObserver, type LedgerSnapshot } from './metrics.js';
import { accessControl, principalOf } from './plugins/access-control.js';
import { hardenedServerOptions, httpHardening } from './plugins/http-hardening.js';
import { requestMetrics } from './plugins/request-metrics.js';
import { registerAdminAgentRoutes } from './routes/admin-agents.js';
import { registerAdminFleetRoutes } from './routes/admin-fleet.js';
import { registerAdminJobRoutes } from './routes/admin-jobs.js';
import { registerAdminModelRoutes } from './routes/admin-models.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerBacklogRoutes } from './routes/backlog.js';
import { registerFleetRoutes } from './routes/fleet.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerKeyRoutes } from './routes/keys.js';
import { registerOllamaRoutes } from './compat/ollama/routes.js';
import { registerOpenAiRoutes } from './compat/openai/routes.js';

export interface Api {
  app: FastifyInstance;
  context: ApiContext;
  /** Every route with its declared access level. */
  routes(): DeclaredRoute[];
  /** Listens on the configured host and port; resolves with the base URL. */
  listen(): Promise<string>;
  /**
   * The first part of stopping: /readyz answers 503 at once; after `readinessMs` (time for a
   * balancer to notice) every native SSE stream is ended with a `retry:` hint so its client
   * reconnects to another replica with Last-Event-ID. Compatibility streams, which cannot
   * resume, are left to finish until `close`.
   */
  drain(readinessMs: number): Promise<number>;
  close(): Promise<void>;
}

/** How long submits reuse one read of the fleet catalog (a rollout's routing follows a change within it). */
const CATALOG_CACHE_MS = 1_000;

const DISCOVERY_INTERVAL_MS = 5_000;
/** A scrape-time read from Redis gets this long; all run at once, well inside Prometheus's 10 s scrape timeout. */
const SCRAPE_READ_TIMEOUT_MS = 2_000;
/** The SSE `retry:` a draining replica ends its streams with: reconnect at once (EventSource's own default is ~3 s). */
const STREAM_RETRY_HINT_MS = 100;

/**
 * Builds the API: connections, services, plugins, routes. A composition root: it only puts
 * the parts together, in dependency order; each concern lives in its own module. Nothing
 * listens until `listen()`.
 */
export async function createApi(config: ApiConfig, deps: { logger: Logger }): Promise<Api> {
  const logger = deps.logger;
  const keys = redisKeys(config.redisPrefix);
  // Read before any connection opens: a bad keys file stops start-up with its reason.
  const keyStore = ApiKeyStore.fromConfig(config);
  // Fail-fast connection for request paths (queues, reads) and a patient one for pub/sub.
  // Named so `CLIENT LIST` and MONITOR show which process a command came from.
  const target = redisTarget(config);
  const redis = createRedis(target, 'request', { connectionName: 'sy-api' });
  // Job channels are shard channels: under Cluster, one subscriber connection per master.
  const subscriberConnection = createRedis(target, 'worker', { connectionName: 'sy-api-sub', shardedSubscribers: true });
  redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
  subscriberConnection.on('error', (error) => logger.warn({ err: error }, 'redis subscriber error'));
  // REDIS_WAIT_REPLICAS: the barrier's WAIT blocks a connection, so it has one of its own.
  const replication =
    config.redisWaitReplicas > 0
      ? (() => {
          const connection = createRedis(target, 'request', { connectionName: 'sy-api-wait' });
          connection.on('error', (error) => logger.warn({ err: error }, 'redis replication-barrier connection error'));
          return { connection, barrier: new ReplicationBarrier(connection, `${config.redisPrefix}:replication-probe`, config.redisWaitReplicas, config.redisWaitTimeoutMs) };
        })()
      : undefined;
  // Start even when Redis is down (requests answer 503 until it is back), but do not
  // answer the first requests with 503 merely because the connection is still opening.
  await waitUntilReady(redis, 2_000).catch((error) => logger.warn({ err: error }, 'starting without Redis'));
  // Durability settings (appendonly, appendfsync, maxmemory-policy): an evicting Redis is refused here, before any request.
  await checkRedisSettingsAtStart(redis, { redisUrl: describeRedisTarget(target), allowEvicting: config.allowEvictingRedis, logger }).catch(async (error: unknown) => {
    await Promise.all([closeRedis(redis), closeRedis(subscriberConnection), ...(replication ? [closeRedis(replication.connection)] : [])]);
    throw error;
  });
  // A WAIT for more replicas than the master has refuses every submit: say so at start, not per request.
  if (replication) {
    const connected = await redis
      .info('replication')
      .then((info) => Number(/^connected_slaves:(\d+)/m.exec(info)?.[1] ?? 0))
      .catch(() => undefined);
    if (connected !== undefined && connected < config.redisWaitReplicas) {
      logger.error(
        { connected_replicas: connected, REDIS_WAIT_REPLICAS: config.redisWaitReplicas },
        `REDIS_WAIT_REPLICAS=${config.redisWaitReplicas} but the Redis master has ${connected} replica(s) connected: submits answer 503 replication_timeout until enough are; attach replicas or lower REDIS_WAIT_REPLICAS`,
      );
    }
  }
  // Run-time keys (/admin/keys): read once before any request, then polled; logs whether the API runs open.
  await keyStore.start({ redis, keys: keys.apiKeys, logger: logger.child({ component: 'auth' }) });

  // Services, in dependency order.
  const queues = new QueueRegistry(redis, keys);
  const events = new EventLog(redis, keys);
  const subscriber = new SharedSubscriber(subscriberConnection);
  const fleet = new FleetView(new FleetRegistry(redis, keys), config.fleetCacheMs);
  const ledger = new AdmissionLedger(redis, keys);
  const registry = new Registry();
  const metrics = createApiMetrics(registry);
  const catalog = new ModelCatalogStore(redis, keys);
  // Every submit asks whether its model is in a rollout; the catalog changes rarely, so one read serves a second of them.
  const catalogEntries = new CachedRead(() => catalog.list(), CATALOG_CACHE_MS);
  const unserved = new UnservedDemand(redis, keys.admission, config.unservedDemandSeconds * 1000);
  const admission = new Admission({
    redis,
    ledger,
    fleet,
    keyStore,
    config,
    metrics,
    catalog,
    unserved,
    logger: logger.child({ component: 'admission' }),
    catalogEntries: () => catalogEntries.get(),
  });
  const lifecycle = new JobLifecycle(redis, keys, ledger, { recordTtlSeconds: config.jobRetentionSeconds });
  const records = new JobRecords(redis, keys);
  const jobs = new JobService({
    redis,
    keys,
    queues,
    lifecycle,
    records,
    admission,
    ledger,
    metrics,
    logger,
    ...(replication && { replication: replication.barrier }),
  });
  registerQueueMetrics(registry, { queueCounts: () => jobs.queueCounts(), ledger: () => ledgerSnapshot({ redis, ledger, queues, admission }) });
  registerFleetMetrics(registry, fleet, catalog);
  const backlog = new Backlog({ redis, keys: keys.admission, queues, records, fleet, catalog, unserved, capacityMemoryMs: config.capacityMemorySeconds * 1000 });
  registerBacklogMetrics(registry, backlog);
  // Last: it guards every metric registered so far.
  guardScrapeReads(registry, () => redis.ping(), SCRAPE_READ_TIMEOUT_MS);
  const failover = new AgentFailover({
    redis,
    keys,
    queues,
    records,
    lifecycle,
    lapseMs: config.agentLapseMs,
    logger: logger.child({ component: 'failover' }),
    onRequeued: (count) => metrics.jobsRequeued.inc(count),
  });
  // Marks the jobs this replica streams, for the disconnect grace of every replica's maintenance.
  const presence = new StreamPresence(redis, keys);
  const maintenance = new Maintenance({
    catalog,
    presence,
    redis,
    keys,
    ledger,
    admission,
    jobs,
    lifecycle,
    failover,
    queues,
    fleet,
    metrics,
    config,
    logger: logger.child({ component: 'maintenance' }),
  });
  const feed = new JobEventFeed(subscriber, events, keys, logger, { stallMs: config.feedStallMs });
  const context: ApiContext = {
    config,
    redis,
    keys,
    jobs,
    fleet,
    catalog,
    relay: new EventRelay(feed),
    feed,
    metrics,
    admission,
    ledger,
    backlog,
    presence,
    keyStore,
    lifecycle: { draining: false },
    tenantOf: (request) => {
      const principal = principalOf(request, keyStore);
      if (!principal) {
        throw new ApiError(ApiErrorCode.unauthorized, 'a valid API key is required: send Authorization: Bearer <key> (or X-API-Key)');
      }
      return principal.tenant;
    },
    isAdmin: (request) => principalOf(request, keyStore)?.admin === true,
    waitForJobEnd: jobEndWaiter(subscriber, events, keys),
    observeEvent: ttftObserver(metrics),
  };

  // HTTP: the route-access bookkeeping first (it must see every route), then the plugins
  // every request passes through, then the routes.
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // A log line per request costs more than the rest of a submit; metrics count requests.
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    // On close, drop keep-alive connections that carry no request (a client that aborted a
    // stream often leaves one); otherwise a graceful shutdown waits on them indefinitely.
    forceCloseConnections: 'idle',
    ...hardenedServerOptions(config),
  });
  const accessDeclarations = trackAccessDeclarations(app);
  await app.register(httpHardening, { config });
  await app.register(accessControl, { keyStore, sessions: new AdminSessions(redis, keys, config.adminSessionTtlSeconds) });
  await app.register(requestMetrics, { metrics });

  registerHealthRoutes(app, context);
  registerJobRoutes(app, context);
  registerFleetRoutes(app, context);
  registerBacklogRoutes(app, context);
  registerAdminRoutes(app, context);
  registerKeyRoutes(app, context);
  registerAdminJobRoutes(app, context);
  registerAdminAgentRoutes(app, context);
  registerAdminFleetRoutes(app, context);
  registerAdminModelRoutes(app, context);
  registerOpenAiRoutes(app, context);
  registerOllamaRoutes(app, context);
  await queues.discover().catch((error) => logger.warn({ err: error }, 'could not list known model queues yet'));
  await registerBullBoard(app, queues);
  accessDeclarations.assertDeclared();
  const discovery = setInterval(() => void queues.discover().catch(() => undefined), DISCOVERY_INTERVAL_MS);
  discovery.unref();
  maintenance.start();

  return {
    app,
    context,
    routes: () => accessDeclarations.routes(),
    listen: async () => {
      const address = await app.listen({ host: config.host, port: config.port });
      return address.replace('[::]', '127.0.0.1').replace('0.0.0.0', '127.0.0.1');
    },
    drain: async (readinessMs) => {
      context.lifecycle.draining = true;
      if (readinessMs > 0) await new Promise((resolve) => setTimeout(resolve, readinessMs));
      return context.relay.endAll(STREAM_RETRY_HINT_MS);
    },
    close: async () => {
      clearInterval(discovery);
      await maintenance.stop();
      await app.close();
      presence.close();
      await queues.close();
      await keyStore.close();
      await closeRedis(subscriberConnection);
      if (replication) await closeRedis(replication.connection);
      await closeRedis(redis);
    },
  };
}

/** The admission ledger's fleet-wide figures for the queue gauges, read at scrape time. */
async function ledgerSnapshot(deps: { redis: RedisConnection; ledger: AdmissionLedger; queues: QueueRegistry; admission: Admission }): Promise<LedgerSnapshot> {
  const models = [...deps.queues.opened().keys()];
  const now = Date.now();
  const [stats, outcomes] = await Promise.all([deps.admission.modelStats(models), deps.redis.hgetall(deps.ledger.keys.outcomes)]);
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
}
