import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ByteSize, EnvNonNegativeInt, EnvNumber, EnvPositiveInt, LogLevel, RedisPrefix, parseEnvConfig, readEnv, type EnvNames } from '@switchyard/protocol';

export const AgentConfig = z.object({
  /** Redis holding the queues. */
  redisUrl: z.string().url(),
  /** Key prefix shared by the API and agents of one deployment. */
  redisPrefix: RedisPrefix.default('sy'),
  /** The Ollama (or gpu-sim) this agent fronts. */
  backendUrl: z.string().url().default('http://127.0.0.1:11434'),
  agentId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, 'agent id may use letters, digits, . _ - only')
    .default(() => `${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-${randomBytes(3).toString('hex')}`),
  /** Jobs this agent runs at once across all models (its GPU's parallel slots). */
  slots: EnvPositiveInt.default(4),
  /** VRAM per GPU when nvidia-smi is absent; a list for several GPUs. */
  gpuVramBytes: z.array(ByteSize.pipe(z.number().positive('must be more than 0 bytes'))).min(1, 'needs at least one GPU').default([24e9]),
  gpuName: z.string().default('configured-gpu'),
  /** Path of nvidia-smi; discovery is skipped when it is not there. */
  nvidiaSmiPath: z.string().default('nvidia-smi'),
  heartbeatIntervalMs: EnvPositiveInt.default(2_000),
  /** A missing beat for this long means the agent is gone. */
  heartbeatTtlMs: EnvPositiveInt.default(6_000),
  /** How often the backend's model lists are refreshed. */
  inventoryRefreshMs: EnvPositiveInt.default(5_000),
  /** Safety sweep over served queues, for jobs no wake-up announced (retries, stalled jobs). */
  sweepIntervalMs: EnvPositiveInt.default(500),
  /** BullMQ lock: a dead agent's job is retried elsewhere after about this long. */
  lockDurationMs: EnvPositiveInt.default(15_000),
  stalledIntervalMs: EnvPositiveInt.default(5_000),
  /** Tokens arriving within this window after the previous flush go out as one event. */
  tokenCoalesceMs: EnvNonNegativeInt.default(5),
  /**
   * keep_alive sent with every request and load. The agent, not Ollama's 5-minute timer,
   * owns lifecycle: models stay until the agent unloads them (`-1` = forever).
   */
  keepAlive: z
    .union([z.number(), z.string()])
    // "-1" or "300" from the environment mean seconds; Ollama wants those as numbers.
    .transform((value) => (typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value))
    .default(-1),
  /** The backend's parallel requests per loaded model (Ollama's OLLAMA_NUM_PARALLEL). */
  backendParallel: EnvPositiveInt.default(1),
  /** Context length models are loaded with (Ollama's default num_ctx), for the VRAM estimate. */
  backendNumCtx: EnvPositiveInt.default(4096),
  /** Models the backend keeps loaded at once (OLLAMA_MAX_LOADED_MODELS; Ollama: 3 per GPU). 0 = VRAM decides. */
  backendMaxLoaded: EnvNonNegativeInt.default(0),
  /** Models loaded at start and never evicted. */
  pinnedModels: z.array(z.string()).default([]),
  /** A model idle this long (no job running or started) is unloaded. */
  idleUnloadMs: EnvPositiveInt.default(10 * 60_000),
  /** A model is never evicted sooner than this after it was loaded (anti-thrash). */
  minResidencyMs: EnvPositiveInt.default(60_000),
  /** An extra copy (the fleet has others) idle this long is unloaded: back to one copy when demand falls. */
  extraCopyIdleMs: EnvPositiveInt.default(60_000),
  /** Load throughput assumed before the first load is measured. */
  loadBytesPerSecond: ByteSize.pipe(z.number().positive('must be more than 0 bytes per second')).default(2e9),
  /**
   * A cold model whose oldest job has waited this long, and that fits here only if busy
   * models go, gets room: this node stops taking new jobs of the least valuable of them,
   * lets their running jobs finish, unloads them and loads it (starvation guard). It is also
   * the aging unit of such a drain's displacement rule (busy victims cost more than idle ones).
   */
  drainForColdAfterMs: EnvPositiveInt.default(30_000),
  /** A drain that has not freed the room after this long is abandoned. */
  drainTimeoutMs: EnvPositiveInt.default(600_000),
  /** Floor on the expected load time, so claim latency is not read as a slow copy. */
  minExpectedLoadMs: EnvPositiveInt.default(250),
  /** A model whose load failed for lack of memory is not tried again here for this long. */
  unfitCooldownMs: EnvPositiveInt.default(60_000),
  /** Time constant of recency in a resident model's value (eviction order). */
  recencyTauMs: EnvPositiveInt.default(120_000),
  /** Horizon over which expected arrivals count in a resident model's value. */
  demandHorizonMs: EnvPositiveInt.default(60_000),
  /** A waiting model displaces resident ones only when its worth is this many times theirs (hysteresis against ping-pong). */
  displacementMargin: EnvNumber.min(1, 'must be at least 1').default(2),
  /** Once a waiting model's oldest job has waited this long, its worth grows with the square of the wait (in these units); a drain ages by `drainForColdAfterMs` instead. */
  displacementAgingMs: EnvPositiveInt.default(10_000),
  /** How often placement decisions (warm, evict, unload) are revisited. */
  placementIntervalMs: EnvPositiveInt.default(250),
  /** Window over which arrival rates (demand) are measured. */
  demandWindowMs: EnvPositiveInt.default(30_000),
  /**
   * How long SIGTERM/SIGINT lets running jobs finish; then they are handed back to their
   * queues and the process exits. Under Kubernetes' default 30 s grace period, so the hand-back
   * happens before a SIGKILL would strand the jobs until their locks expire.
   */
  shutdownTimeoutMs: EnvPositiveInt.default(25_000),
  logLevel: LogLevel.default('info'),
});
export type AgentConfig = z.infer<typeof AgentConfig>;
export type AgentConfigInput = z.input<typeof AgentConfig>;

/**
 * The environment variable behind each field (see README); errors name the variable. Where
 * two names are listed the first one set wins (OLLAMA_URL is what Ollama users say).
 */
const ENV_NAMES: EnvNames<keyof AgentConfig> = {
  redisUrl: 'REDIS_URL',
  redisPrefix: 'REDIS_PREFIX',
  backendUrl: ['BACKEND_URL', 'OLLAMA_URL'],
  agentId: 'AGENT_ID',
  slots: 'AGENT_SLOTS',
  gpuVramBytes: 'GPU_VRAM',
  gpuName: 'GPU_NAME',
  nvidiaSmiPath: 'NVIDIA_SMI_PATH',
  heartbeatIntervalMs: 'HEARTBEAT_INTERVAL_MS',
  heartbeatTtlMs: 'HEARTBEAT_TTL_MS',
  inventoryRefreshMs: 'INVENTORY_REFRESH_MS',
  sweepIntervalMs: 'SWEEP_INTERVAL_MS',
  lockDurationMs: 'LOCK_DURATION_MS',
  stalledIntervalMs: 'STALLED_INTERVAL_MS',
  tokenCoalesceMs: 'TOKEN_COALESCE_MS',
  keepAlive: 'KEEP_ALIVE',
  backendParallel: 'BACKEND_NUM_PARALLEL',
  backendNumCtx: 'BACKEND_NUM_CTX',
  backendMaxLoaded: 'BACKEND_MAX_LOADED_MODELS',
  pinnedModels: 'PINNED_MODELS',
  idleUnloadMs: 'IDLE_UNLOAD_MS',
  minResidencyMs: 'MIN_RESIDENCY_MS',
  extraCopyIdleMs: 'EXTRA_COPY_IDLE_MS',
  loadBytesPerSecond: 'LOAD_BYTES_PER_S',
  placementIntervalMs: 'PLACEMENT_INTERVAL_MS',
  drainForColdAfterMs: 'DRAIN_FOR_COLD_AFTER_MS',
  drainTimeoutMs: 'DRAIN_TIMEOUT_MS',
  minExpectedLoadMs: 'MIN_EXPECTED_LOAD_MS',
  unfitCooldownMs: 'UNFIT_COOLDOWN_MS',
  recencyTauMs: 'RECENCY_TAU_MS',
  demandHorizonMs: 'DEMAND_HORIZON_MS',
  displacementMargin: 'DISPLACEMENT_MARGIN',
  displacementAgingMs: 'DISPLACEMENT_AGING_MS',
  demandWindowMs: 'DEMAND_WINDOW_MS',
  shutdownTimeoutMs: 'SHUTDOWN_TIMEOUT_MS',
  logLevel: 'LOG_LEVEL',
};
/** Fields given as comma lists in the environment. */
const LIST_FIELDS = new Set<keyof AgentConfig>(['gpuVramBytes', 'pinnedModels']);

/** Reads the agent's configuration from environment variables (see README for the table). */
export function loadConfig(env: NodeJS.ProcessEnv): AgentConfig {
  const { values, nameOf } = readEnv(env, ENV_NAMES, LIST_FIELDS);
  return parseConfig({ redisUrl: 'redis://127.0.0.1:6379', ...values }, nameOf);
}

/** Validates a config object; throws an error that names every bad field. */
export function parseConfig(raw: Record<string, unknown>, nameOf: (field: string) => string = (field) => field): AgentConfig {
  const defined = Object.fromEntries(Object.entries(raw).filter(([, value]) => value !== undefined));
  return parseEnvConfig(AgentConfig, defined, 'agent', nameOf);
}
