import { z } from 'zod';
import {
  EnvFlag,
  EnvHostPortList,
  EnvNonNegativeInt,
  EnvNonNegativeNumber,
  EnvNumber,
  EnvPositiveInt,
  LogLevel,
  RedisPrefix,
  parseEnvConfig,
  readEnv,
} from '@switchyard/protocol';

export const ApiConfig = z.object({
  host: z.string().default('0.0.0.0').describe('Listen address.'),
  /** 0 picks a free port (tests). */
  port: EnvNumber.int().min(0).max(65535).default(8080).describe('Listen port; 0 picks a free one.'),
  redisUrl: z.string().url().describe('Redis holding queues and events (`maxmemory-policy noeviction`).'),
  /** Unset: the single Redis of `redisUrl`. */
  redisClusterNodes: EnvHostPortList.optional().describe(
    'Redis Cluster seed nodes, `host:port,…` (a few masters suffice: the client learns the rest). Set, it replaces `REDIS_URL`; job, queue, ledger and fleet keys carry hash tags and live events use sharded pub/sub (Redis 7 or later; see docs/operations.md, Redis Cluster).',
  ),
  redisPrefix: RedisPrefix.default('sy').describe('Key prefix shared by the API and agents of one deployment.'),
  /** Start-up refuses a Redis that evicts keys (the keys are the jobs) unless this is set; see packages/redis/src/redis-settings.ts. */
  allowEvictingRedis: EnvFlag.default(false).describe(
    '`1`: start even when Redis runs with an evicting `maxmemory-policy` (logged as an error); otherwise start-up refuses it, since evicted keys are lost jobs. Start-up also logs an error when `appendonly` is not `yes` or `appendfsync` is `no`.',
  ),
  /** Largest accepted request body. */
  bodyLimitBytes: EnvPositiveInt.default(4 * 1024 * 1024).describe('Largest request body (413 above).'),
  /** SSE comment heartbeat, so proxies and clients see a live connection. */
  sseHeartbeatMs: EnvPositiveInt.default(15_000).describe('SSE keep-alive comment interval.'),
  /**
   * A stream that delivered no event for this long re-reads its job's log (a chaos run saw
   * streams hang after a Redis restart: their jobs ended while nobody heard it).
   */
  feedStallMs: EnvPositiveInt.default(30_000).describe(
    "A stream (native or compatibility) that delivered no event for this long re-reads its job's event log, delivers what it missed and ends if the job has ended.",
  ),
  /** How long a fleet view (agent heartbeats) is reused before it is read again. */
  fleetCacheMs: EnvPositiveInt.default(500).describe('How long admission reuses the fleet view read from heartbeats.'),
  /** How long a finished job stays readable through GET /v1/jobs/:id. */
  jobRetentionSeconds: EnvPositiveInt.default(24 * 3600).describe('How long finished jobs stay readable.'),
  /** Window in which the same idempotency_key returns the existing job. */
  idempotencyWindowSeconds: EnvPositiveInt.default(24 * 3600).describe('Window of `idempotency_key`.'),
  /** How long DELETE waits for a running job to confirm its cancellation before answering 202. */
  cancelWaitMs: EnvNonNegativeInt.default(2_000).describe('How long `DELETE` waits for a running job to confirm.'),
  /** Public base URL used in `links`; defaults to a relative path. */
  publicBaseUrl: z.string().url().optional().describe('Base for `links` in answers.'),
  logLevel: LogLevel.default('info').describe('pino level.'),

  // Tenants and keys. With none configured the API runs open (every caller is `default`).
  /** `tenant:key` pairs, comma-separated. */
  apiKeys: z.string().optional().describe('`tenant:key` pairs, comma-separated.'),
  /** JSON file of keys (plain or sha256) and per-tenant limits; see docs/security.md. */
  apiKeysFile: z.string().optional().describe('JSON file of keys (plain or `sha256`) and per-tenant limits.'),
  /** Keys that unlock fleet endpoints, /metrics and Bull Board (tenant `admin`), comma-separated. */
  adminApiKeys: z.string().optional().describe('Admin keys, comma-separated.'),

  /** Deepest nesting of a JSON body (objects and arrays); deeper is a 400 naming where. */
  maxJsonDepth: EnvPositiveInt.max(1_000).default(64).describe('Deepest nesting of a JSON body; deeper is a `400` naming where.'),
  /** How long an admin browser session (Bull Board cookie) lasts. */
  adminSessionTtlSeconds: EnvPositiveInt.default(8 * 3600).describe('Lifetime of an admin browser session (Bull Board cookie).'),
  /** How often the fleet page's stream (`GET /admin/fleet/events`) looks for a changed summary. */
  fleetSummaryIntervalMs: EnvPositiveInt.min(100)
    .default(1_000)
    .describe('How often `GET /admin/fleet/events` (the fleet page) reads the fleet summary and sends it when it changed.'),
  /**
   * Proxies whose X-Forwarded-For/-Proto are believed (Fastify trustProxy: comma-separated
   * addresses or CIDRs). Unset: the connection itself is the truth.
   */
  trustedProxies: z.string().optional().describe('Proxies whose `X-Forwarded-For`/`-Proto` are believed (addresses or CIDRs, comma-separated).'),
  /** Origins allowed to call the API from a browser (CORS), comma-separated, or `*`. Unset: CORS off. */
  corsOrigins: z.string().optional().describe('Browser origins allowed to call the API, comma-separated, or `*` (never with credentials).'),

  // Admission limits: defaults; per-model and per-tenant values (and these defaults) can be
  // changed at run time in Redis (`PUT /admin/limits`).
  /** Jobs waiting (admitted, not started) per model queue. */
  queueDepthLimit: EnvNonNegativeInt.default(1_000).describe('Jobs waiting per model queue (default; per model at run time).'),
  /** Jobs in flight (queued + running) per tenant. */
  tenantInFlightLimit: EnvNonNegativeInt.default(500).describe('Queued + running jobs per tenant.'),
  /** Jobs in flight per tenant on any one model. */
  tenantModelInFlightLimit: EnvNonNegativeInt.default(500).describe('Queued + running jobs per tenant on one model.'),
  /** Jobs in flight fleet-wide. */
  globalInFlightLimit: EnvNonNegativeInt.default(10_000).describe('Queued + running jobs fleet-wide.'),

  // Estimates, priorities, fairness.
  /** Sliding window of the measured drain rate (completions per second). */
  drainWindowSeconds: EnvPositiveInt.default(60).describe('Sliding window of the measured drain rate.'),
  /** Batch jobs rank as if they had arrived this much later than interactive ones (aging bound). */
  batchPriorityOffsetSeconds: EnvNonNegativeNumber.default(120).describe('Batch jobs rank as if they arrived this much later (aging bound).'),
  /** Each job a tenant already has in flight on a model ranks its next one this much later (fair share). */
  fairShareStepSeconds: EnvNonNegativeNumber.default(2).describe('Virtual-time step per job a tenant has in flight on the model.'),
  /** Longest Retry-After handed out. */
  retryAfterMaxSeconds: EnvPositiveInt.default(600).describe('Longest Retry-After.'),
  /** Retry-After when a model has no measured drain rate yet. */
  retryAfterFallbackSeconds: EnvPositiveInt.default(5).describe('Retry-After while nothing has been measured.'),
  /** A model an agent listed within this long is "capacity that may return" (503), not unknown (404). */
  capacityMemorySeconds: EnvPositiveInt.default(600).describe('A model an agent listed this recently answers `503 no_capacity` when its agents are gone, not `404`.'),
  /**
   * A refused submit is in no queue, so without this a pool scaled to zero would never see
   * the demand that should wake it (KEDA polls every 30 s by default).
   */
  unservedDemandSeconds: EnvPositiveInt.default(120).describe(
    "How long a submit refused `503 no_capacity` for a model in the fleet catalog (or one an agent had lately) counts in the backlog as `unserved` (`GET /v1/backlog`, `switchyard_backlog`) while no agent serves the model, so a scaler polling less often than clients retry still sees it. Keep it above KEDA's `pollingInterval`.",
  ),

  // Cancellation and background work.
  /** A job whose native streams all closed and none came back within this long is cancelled. */
  disconnectGraceMs: EnvNonNegativeInt.default(15_000).describe('Cancel a job this long after its last native stream closed.'),
  /** Least interval between `queued` position updates of one job. */
  queuedUpdateIntervalMs: EnvPositiveInt.default(1_000).describe('Least interval between `queued` updates of one job.'),
  /** Period of the maintenance loop (expiry, disconnect grace, position updates) on the replica holding its lock. */
  maintenanceIntervalMs: EnvPositiveInt.default(250).describe('Period of expiry, disconnect grace and position updates (on the replica holding the maintenance lock).'),
  /** Period of the admission-count reconciliation against BullMQ. */
  reconcileIntervalMs: EnvPositiveInt.default(5_000).describe('Period of the admission-count reconciliation against BullMQ.'),
  drainReadinessMs: EnvNonNegativeInt.default(2_000).describe(
    'On SIGTERM, how long /readyz answers 503 (so a balancer stops sending) before this replica ends its SSE streams with a reconnect hint and closes; within the 10 s stop bound.',
  ),
  agentLapseMs: EnvPositiveInt.default(3_500).describe(
    "An agent whose newest heartbeat is this old has lost its jobs: they go back to their queues at once (agents beat every 2 s, so 3.5 s is a missed beat plus margin; BullMQ's lock expiry stays the backstop).",
  ),
});
export type ApiConfig = z.infer<typeof ApiConfig>;
export type ApiConfigInput = z.input<typeof ApiConfig>;

const ENV_NAMES: Record<keyof ApiConfig, string> = {
  host: 'HOST',
  port: 'PORT',
  redisUrl: 'REDIS_URL',
  redisClusterNodes: 'REDIS_CLUSTER_NODES',
  redisPrefix: 'REDIS_PREFIX',
  allowEvictingRedis: 'ALLOW_EVICTING_REDIS',
  bodyLimitBytes: 'BODY_LIMIT_BYTES',
  sseHeartbeatMs: 'SSE_HEARTBEAT_MS',
  feedStallMs: 'FEED_STALL_MS',
  fleetCacheMs: 'FLEET_CACHE_MS',
  jobRetentionSeconds: 'JOB_RETENTION_SECONDS',
  idempotencyWindowSeconds: 'IDEMPOTENCY_WINDOW_SECONDS',
  cancelWaitMs: 'CANCEL_WAIT_MS',
  publicBaseUrl: 'PUBLIC_BASE_URL',
  logLevel: 'LOG_LEVEL',
  apiKeys: 'API_KEYS',
  apiKeysFile: 'API_KEYS_FILE',
  adminApiKeys: 'ADMIN_API_KEYS',
  maxJsonDepth: 'MAX_JSON_DEPTH',
  adminSessionTtlSeconds: 'ADMIN_SESSION_TTL_SECONDS',
  fleetSummaryIntervalMs: 'FLEET_SUMMARY_INTERVAL_MS',
  trustedProxies: 'TRUSTED_PROXIES',
  corsOrigins: 'CORS_ORIGINS',
  queueDepthLimit: 'QUEUE_DEPTH_LIMIT',
  tenantInFlightLimit: 'TENANT_IN_FLIGHT_LIMIT',
  tenantModelInFlightLimit: 'TENANT_MODEL_IN_FLIGHT_LIMIT',
  globalInFlightLimit: 'GLOBAL_IN_FLIGHT_LIMIT',
  drainWindowSeconds: 'DRAIN_WINDOW_SECONDS',
  batchPriorityOffsetSeconds: 'BATCH_PRIORITY_OFFSET_SECONDS',
  fairShareStepSeconds: 'FAIR_SHARE_STEP_SECONDS',
  retryAfterMaxSeconds: 'RETRY_AFTER_MAX_SECONDS',
  retryAfterFallbackSeconds: 'RETRY_AFTER_FALLBACK_SECONDS',
  capacityMemorySeconds: 'CAPACITY_MEMORY_SECONDS',
  unservedDemandSeconds: 'UNSERVED_DEMAND_SECONDS',
  disconnectGraceMs: 'DISCONNECT_GRACE_MS',
  queuedUpdateIntervalMs: 'QUEUED_UPDATE_INTERVAL_MS',
  maintenanceIntervalMs: 'MAINTENANCE_INTERVAL_MS',
  reconcileIntervalMs: 'RECONCILE_INTERVAL_MS',
  agentLapseMs: 'AGENT_LAPSE_MS',
  drainReadinessMs: 'API_DRAIN_READINESS_MS',
};

/** Reads the API's configuration from the environment; errors name the variable. */
export function loadConfig(env: NodeJS.ProcessEnv): ApiConfig {
  const { values, nameOf } = readEnv(env, ENV_NAMES);
  // REDIS_URL has a default here rather than in the schema, so a config given in code must
  // name its Redis; unlike the other variables an empty REDIS_URL is kept, and refused.
  const raw = { redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379', ...values };
  return parseEnvConfig(ApiConfig, raw, 'API', nameOf);
}

/** Validates a config object given in code (tests, embedding). */
export function parseConfig(raw: ApiConfigInput): ApiConfig {
  return ApiConfig.parse(raw);
}

export { ENV_NAMES };
