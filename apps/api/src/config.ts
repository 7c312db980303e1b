import { z } from 'zod';

const positiveInt = z.coerce.number().int().positive();

export const ApiConfig = z.object({
  host: z.string().default('0.0.0.0'),
  /** 0 picks a free port (tests). */
  port: z.coerce.number().int().min(0).max(65535).default(8080),
  redisUrl: z.string().url(),
  redisPrefix: z.string().regex(/^[A-Za-z0-9._-]+$/).default('sy'),
  /** Largest accepted request body. */
  bodyLimitBytes: positiveInt.default(4 * 1024 * 1024),
  /** SSE comment heartbeat, so proxies and clients see a live connection. */
  sseHeartbeatMs: positiveInt.default(15_000),
  /** How long a fleet view (agent heartbeats) is reused before it is read again. */
  fleetCacheMs: positiveInt.default(500),
  /** How long a finished job stays readable through GET /v1/jobs/:id. */
  jobRetentionSeconds: positiveInt.default(24 * 3600),
  /** Window in which the same idempotency_key returns the existing job. */
  idempotencyWindowSeconds: positiveInt.default(24 * 3600),
  /** How long DELETE waits for a running job to confirm its cancellation before answering 202. */
  cancelWaitMs: z.coerce.number().int().nonnegative().default(2_000),
  /** Public base URL used in `links`; defaults to a relative path. */
  publicBaseUrl: z.string().url().optional(),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type ApiConfig = z.infer<typeof ApiConfig>;
export type ApiConfigInput = z.input<typeof ApiConfig>;

const ENV_NAMES: Record<keyof ApiConfig, string> = {
  host: 'HOST',
  port: 'PORT',
  redisUrl: 'REDIS_URL',
  redisPrefix: 'REDIS_PREFIX',
  bodyLimitBytes: 'BODY_LIMIT_BYTES',
  sseHeartbeatMs: 'SSE_HEARTBEAT_MS',
  fleetCacheMs: 'FLEET_CACHE_MS',
  jobRetentionSeconds: 'JOB_RETENTION_SECONDS',
  idempotencyWindowSeconds: 'IDEMPOTENCY_WINDOW_SECONDS',
  cancelWaitMs: 'CANCEL_WAIT_MS',
  publicBaseUrl: 'PUBLIC_BASE_URL',
  logLevel: 'LOG_LEVEL',
};

/** Reads the API's configuration from the environment; errors name the variable. */
export function loadConfig(env: NodeJS.ProcessEnv): ApiConfig {
  const raw: Record<string, unknown> = { redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379' };
  for (const [field, name] of Object.entries(ENV_NAMES)) {
    if (env[name] !== undefined && env[name] !== '') raw[field] = env[name];
  }
  const result = ApiConfig.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const field = issue.path[0] as keyof ApiConfig | undefined;
      return `${field ? ENV_NAMES[field] : '(config)'}: ${issue.message}`;
    });
    throw new Error(`invalid API configuration: ${problems.join('; ')}`);
  }
  return result.data;
}

/** Validates a config object given in code (tests, embedding). */
export function parseConfig(raw: ApiConfigInput): ApiConfig {
  return ApiConfig.parse(raw);
}

export { ENV_NAMES };
