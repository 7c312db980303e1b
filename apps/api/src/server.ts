import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { ApiErrorCode, isTerminalEvent, redisKeys, type StreamEvent } from '@switchyard/protocol';
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
import cors from '@fastify/cors';
import { access, trackAccessDeclarations, type Access, type DeclaredRoute } from './access.js';
import { Admission } from './admission.js';
import { AdminSessions, SESSION_COOKIE } from './admin-sessions.js';
import { ApiKeyStore, cookieValue, presentedKey, type Principal } from './auth.js';
import { registerBullBoard, BULL_BOARD_PATH } from './bull-board.js';
import type { ApiConfig } from './config.js';
import type { ApiContext } from './context.js';
import { ApiError, quoteInput } from './errors.js';
import { refuseOtherMediaTypes, useJsonBodyParser } from './request-body.js';
import { SECURITY_HEADERS, answerConnectRequests, answerUnmetExpectations, clientErrorHandler, frameworkErrorHandler } from './transport-errors.js';
import { sendWireError, wireOf } from './wire-errors.js';
import { EventRelay } from './event-relay.js';
import { JobEventFeed } from './job-event-feed.js';
import { FleetView } from './fleet-view.js';
import { JobService } from './job-service.js';
import { Maintenance } from './maintenance.js';
import { createApiMetrics, type LedgerSnapshot } from './metrics.js';
import { registerFleetMetrics } from './fleet-metrics.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerKeyRoutes } from './routes/keys.js';
import { registerAdminJobRoutes } from './routes/admin-jobs.js';
import { registerFleetRoutes } from './routes/fleet.js';
import { registerHealthRoutes } from './routes/health.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerOpenAiRoutes } from './compat/openai/routes.js';
import { registerOllamaRoutes } from './compat/ollama/routes.js';

export interface Api {
  app: FastifyInstance;
  context: ApiContext;
  /** Every route with its declared access level. */
  routes(): DeclaredRoute[];
  /** Listens on the configured host and port; resolves with the base URL. */
  listen(): Promise<string>;
  close(): Promise<void>;
}

const DISCOVERY_INTERVAL_MS = 5_000;
const OBSERVED_JOBS_CAP = 10_000;
/** Methods that only read: the only ones an admin session cookie is a credential for (no CSRF surface). */
const READ_METHODS = new Set(['GET', 'HEAD']);
/** Headers a browser app may read from a cross-origin answer (backpressure and job links). */
const CORS_EXPOSED_HEADERS = ['Retry-After', 'Retry-After-Ms', 'X-Queue-Depth', 'Location', 'x-switchyard-job-id', 'x-should-retry'];

/** Builds the API: connections, services, routes. Nothing listens until `listen()`. */
export async function createApi(config: ApiConfig, deps: { logger: Logger }): Promise<Api> {
  const logger = deps.logger;
  const keys = redisKeys(config.redisPrefix);
  // Read before any connection opens: a bad keys file stops start-up with its reason.
  const keyStore = ApiKeyStore.fromConfig(config);
  // Fail-fast connection for request paths (queues, reads) and a patient one for pub/sub.
  // Named so `CLIENT LIST` and MONITOR show which process a command came from.
  const redis = createRedis(config.redisUrl, 'request', { connectionName: 'sy-api' });
  const subscriberConnection = createRedis(config.redisUrl, 'worker', { connectionName: 'sy-api-sub' });
  redis.on('error', (error) => logger.warn({ err: error }, 'redis connection error'));
  subscriberConnection.on('error', (error) => logger.warn({ err: error }, 'redis subscriber error'));
  // Start even when Redis is down (requests answer 503 until it is back), but do not
  // answer the first requests with 503 merely because the connection is still opening.
  await waitUntilReady(redis, 2_000).catch((error) => logger.warn({ err: error }, 'starting without Redis'));
  // Run-time keys (/admin/keys): read once before any request, then polled; logs whether the API runs open.
  await keyStore.start({ redis, keys: keys.apiKeys, logger: logger.child({ component: 'auth' }) });

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
  const sessions = new AdminSessions(redis, keys, config.adminSessionTtlSeconds);
  // The principal of each request, resolved once by the access check (onRequest, below):
  // from its key, or — for read-only admin routes — from an admin session cookie.
  const principals = new WeakMap<FastifyRequest, Principal | null>();
  const principalOf = (request: FastifyRequest): Principal | undefined => {
    let principal = principals.get(request);
    if (principal === undefined) {
      principal = keyStore.authenticate(presentedKey(request)) ?? null;
      principals.set(request, principal);
    }
    return principal ?? undefined;
  };
  const resolvePrincipal = async (request: FastifyRequest, level: Access): Promise<Principal | undefined> => {
    const fromKey = principalOf(request);
    if (fromKey || keyStore.open || level !== 'admin' || !READ_METHODS.has(request.method)) return fromKey;
    const fromSession = await sessions.principal(cookieValue(request.headers.cookie, SESSION_COOKIE), (digest) => keyStore.isLive(digest));
    if (fromSession) principals.set(request, fromSession);
    return fromSession;
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
        throw new ApiError(ApiErrorCode.unauthorized, 'a valid API key is required: send Authorization: Bearer <key> (or X-API-Key)');
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
    // Node answers a Host-less HTTP/1.1 request with an empty 400; the access hook answers it
    // in the documented shape instead.
    http: { requireHostHeader: false },
    // X-Forwarded-* (the client's address, and https for the session cookie's Secure flag)
    // is believed only from the proxies named here.
    trustProxy: config.trustedProxies ? config.trustedProxies.split(',').map((entry) => entry.trim()).filter(Boolean) : false,
    clientErrorHandler,
    frameworkErrors: frameworkErrorHandler,
  });
  answerUnmetExpectations(app.server);
  answerConnectRequests(app.server);
  const accessDeclarations = trackAccessDeclarations(app);
  app.setErrorHandler((error, request, reply) => sendWireError(reply, wireOf(request.routeOptions.url ?? request.url), error));
  useJsonBodyParser(app, 'application/json', config.maxJsonDepth);
  refuseOtherMediaTypes(app);

  // @fastify/cors answers preflights on a catch-all OPTIONS route: anyone may ask what is allowed.
  app.addHook('onRoute', (route) => {
    if (route.method === 'OPTIONS' && route.url === '*') route.config = { ...(route.config as object | undefined), access: 'public' } as typeof route.config;
  });
  if (config.corsOrigins) {
    const origins = config.corsOrigins.split(',').map((origin) => origin.trim()).filter(Boolean);
    // Keys travel in headers, never in cookies, on the cross-origin APIs: no credentials,
    // so even `*` cannot let another site act with a browser's ambient credentials.
    await app.register(cors, {
      origin: origins.includes('*') ? '*' : origins,
      credentials: false,
      methods: ['GET', 'HEAD', 'POST', 'PUT', 'DELETE'],
      allowedHeaders: ['Authorization', 'Content-Type', 'X-API-Key', 'Last-Event-ID', 'X-Timeout-Ms', 'Idempotency-Key'],
      exposedHeaders: CORS_EXPOSED_HEADERS,
      maxAge: 600,
    });
  }

  // The access check, on the route the router resolved (its declared level), never on the
  // URL string. Answered here rather than thrown, so every route — Bull Board's, which has an
  // error handler of its own, included — refuses in the shape of its wire.
  app.addHook('onRequest', async (request, reply) => {
    // Raw headers persist into hijacked answers (SSE streams) too, unlike reply.header().
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.raw.setHeader(name, value);
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) reply.raw.setHeader(name, value);
    const route = request.routeOptions.url;
    const wire = wireOf(route ?? request.url);
    try {
      if (!request.headers.host) throw new ApiError(ApiErrorCode.invalidRequest, 'the Host header is required');
      rejectRepeatedQueryParameters(request.query);
      // No route matched: the not-found handler answers 404 to anyone.
      if (route === undefined) return;
      const level = request.routeOptions.config.access ?? 'none';
      if (level === 'public') return;
      if (level === 'none') throw new ApiError(ApiErrorCode.methodNotAllowed, `${request.method} ${route} is not served: Bull Board is read-only; use Switchyard's own verbs (DELETE /admin/jobs/:id, POST /admin/jobs/:id/resubmit)`);
      const principal = await resolvePrincipal(request, level);
      if (!principal) throw new ApiError(ApiErrorCode.unauthorized, `${level === 'admin' ? 'this endpoint needs an admin API key' : 'a valid API key is required'}: send Authorization: Bearer <key> (or X-API-Key)`);
      if (level === 'admin' && !principal.admin) throw new ApiError(ApiErrorCode.forbidden, `tenant ${principal.tenant}'s key is not an admin key`);
      if (level === 'admin' && route.startsWith(BULL_BOARD_PATH)) await startBoardSession(request, reply, principal);
    } catch (error) {
      return sendWireError(reply, wire, error);
    }
  });

  /**
   * A Bull Board visit that authenticated with `?key=` (already validated as an admin key):
   * the key is traded for an opaque session cookie and the browser sent back to the same page
   * without the key in its address bar, history or Referer.
   */
  const startBoardSession = async (request: FastifyRequest, reply: FastifyReply, principal: Principal) => {
    const url = new URL(request.url, 'http://switchyard.invalid');
    if (keyStore.open || !url.searchParams.has('key')) return;
    const token = await sessions.create(principal);
    url.searchParams.delete('key');
    void reply
      .header('Set-Cookie', sessions.cookie(token, request.protocol === 'https'))
      .header('Cache-Control', 'no-store')
      .redirect(`${url.pathname}${url.search}`, 303);
  };

  // HTML pages (Bull Board) may not be framed by another site.
  app.addHook('onSend', async (_request, reply, payload) => {
    const type = reply.getHeader('content-type');
    if (typeof type === 'string' && type.startsWith('text/html')) {
      void reply.header('Content-Security-Policy', "frame-ancestors 'none'").header('X-Frame-Options', 'DENY');
    }
    return payload;
  });

  // Logout is public so an expired session can still clear its cookie.
  const logout = async (request: FastifyRequest, reply: FastifyReply) => {
    await sessions.revoke(cookieValue(request.headers.cookie, SESSION_COOKIE));
    return reply.header('Set-Cookie', AdminSessions.clearCookie(request.protocol === 'https')).header('Cache-Control', 'no-store').send({ logged_out: true });
  };
  app.post('/admin/logout', access('public'), logout);
  app.get('/admin/logout', access('public'), logout);

  // Unmatched requests (and their errors) answer in the shape of the wire the path belongs
  // to: an unknown method on /v1/chat/completions is an OpenAI-shaped 404.
  app.setNotFoundHandler((request, reply) => {
    const error = new ApiError(ApiErrorCode.notFound, `no route ${request.method} ${quoteInput(request.url.split('?')[0], 200)}`);
    void sendWireError(reply, wireOf(request.url), error);
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
  registerKeyRoutes(app, context);
  registerAdminJobRoutes(app, context);
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
    close: async () => {
      clearInterval(discovery);
      await maintenance.stop();
      await app.close();
      await queues.close();
      await keyStore.close();
      await closeRedis(subscriberConnection);
      await closeRedis(redis);
    },
  };
}

/** One value per query parameter: a repeat (`?last_event_id=1&last_event_id=2`) is a 400 naming it. */
function rejectRepeatedQueryParameters(query: unknown): void {
  if (query === null || typeof query !== 'object') return;
  for (const [name, value] of Object.entries(query)) {
    if (Array.isArray(value)) throw new ApiError(ApiErrorCode.invalidRequest, `query parameter ${quoteInput(name, 60)} is given ${value.length} times; send it once`);
  }
}
