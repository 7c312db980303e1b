import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import {
  ByteSize,
  EnvFlag,
  EnvHostPortList,
  EnvNonNegativeInt,
  EnvNumber,
  EnvPositiveInt,
  LabelKey,
  LabelValue,
  LogLevel,
  RedisPrefix,
  parseEnvConfig,
  readEnv,
  type EnvNames,
} from '@switchyard/protocol';
import { REDIS_CONNECTION_CHECK, REDIS_CONNECTION_ENV, RedisConnectionFields, checkRedisConnection } from '@switchyard/redis';

/** `gpu=a100,zone=b` → {gpu: 'a100', zone: 'b'}; a pair without `=` is left for zod to name. */
function labelPairs(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  const pairs = value
    .split(',')
    .map((pair) => pair.trim())
    .filter((pair) => pair !== '');
  const bad = pairs.find((pair) => !pair.includes('='));
  if (bad !== undefined) return { [bad]: undefined };
  return Object.fromEntries(pairs.map((pair) => [pair.slice(0, pair.indexOf('=')).trim(), pair.slice(pair.indexOf('=') + 1).trim()]));
}

export const AgentConfig = z.object({
  /** Redis holding the queues. */
  redisUrl: z.string().url().optional().describe("Redis holding queues and events: the API's (`rediss://` for TLS). Not set under Sentinel (`REDIS_SENTINELS`)."),
  /** Key prefix shared by the API and agents of one deployment. */
  /** Unset: the single Redis of `redisUrl`. */
  redisClusterNodes: EnvHostPortList.optional().describe("Redis Cluster seed nodes, `host:port,…`: the API's (set, it replaces `REDIS_URL`)."),
  // Sentinel, credentials and TLS: the same settings as the API's (packages/redis/src/redis-target.ts).
  ...RedisConnectionFields,
  redisPrefix: RedisPrefix.default('sy').describe("Key prefix shared by the API and agents of one deployment: the API's."),
  /** Start-up refuses a Redis that evicts keys (the keys are the jobs) unless this is set; see packages/redis/src/redis-settings.ts. */
  allowEvictingRedis: EnvFlag.default(false).describe(
    '`1`: start even when Redis runs with an evicting `maxmemory-policy` (logged as an error); otherwise start-up refuses it, as the API does.',
  ),
  /** The Ollama (or gpu-sim) this agent fronts. */
  backendUrl: z.string().url().default('http://127.0.0.1:11434').describe('The Ollama (or gpu-sim) this agent fronts.'),
  agentId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, 'agent id may use letters, digits, . _ - only')
    .default(() => `${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-${randomBytes(3).toString('hex')}`)
    .describe('Name in heartbeats and logs.'),
  /** Jobs this agent runs at once across all models (its GPU's parallel slots). */
  slots: EnvPositiveInt.default(4).describe('Jobs run at once across all models; no job is claimed beyond them.'),
  /** Embed jobs this agent runs at once (a budget of their own, apart from `slots`): they are batched into few backend calls. */
  embedSlots: EnvPositiveInt.default(64).describe(
    'Embed jobs run at once, a budget apart from `AGENT_SLOTS`: jobs of a warm embedding model (`/api/show` capabilities has `embedding`, not `completion`) are claimed up to it and this agent combines the concurrent ones into few `/api/embed` calls.',
  ),
  /** Most inputs in one batched `/api/embed` call. */
  embedBatchMaxInputs: EnvPositiveInt.default(64).describe(
    'Most inputs in one `/api/embed` call when concurrent embed jobs of a model are combined (a job with more goes alone, never split).',
  ),
  /** How long an embed job arriving with no call of its model in flight waits for others; 0 = sends at once. */
  embedBatchWindowMs: EnvNonNegativeInt.default(0).describe(
    'How long an embed job that finds no `/api/embed` call of its model in flight waits for company before its call goes; 0 sends at once. Jobs arriving while a call is in flight always go together when it returns.',
  ),
  /** VRAM per GPU when nvidia-smi is absent; a list for several GPUs. */
  gpuVramBytes: z
    .array(ByteSize.pipe(z.number().positive('must be more than 0 bytes')))
    .min(1, 'needs at least one GPU')
    .default([24e9])
    .describe('VRAM per GPU when `nvidia-smi` is absent; comma list for several GPUs.'),
  gpuName: z.string().default('configured-gpu').describe('GPU name when `nvidia-smi` is absent.'),
  /** Path of nvidia-smi; discovery is skipped when it is not there. */
  nvidiaSmiPath: z.string().default('nvidia-smi').describe('GPU discovery; skipped when absent.'),
  /** nvidia-smi takes tens of ms and Prometheus scrapes every 15-30 s: a read per scrape or so is plenty. */
  gpuStatsIntervalMs: EnvNonNegativeInt.default(10_000).describe(
    'How often nvidia-smi is re-read for GPU utilisation, temperature, power and VRAM used (heartbeat and `/metrics`); 0: read at start only.',
  ),
  heartbeatIntervalMs: EnvPositiveInt.default(2_000).describe(
    "Heartbeat period. The period is also how often a placement round reads every cold model's queues, for work nobody announced (a retried or stalled job); between those, rounds read only models announced since last seen empty.",
  ),
  /** A missing beat for this long means the agent is gone. */
  heartbeatTtlMs: EnvPositiveInt.default(6_000).describe('Heartbeat expiry: an agent whose beat is this old is gone.'),
  /** How often the backend's model lists are refreshed. */
  inventoryRefreshMs: EnvPositiveInt.default(5_000).describe("How often the backend's model lists are read."),
  /** Safety sweep over served queues, for jobs no wake-up announced (retries, stalled jobs). */
  sweepIntervalMs: EnvPositiveInt.default(500).describe('Safety poll for work no announcement woke the agent for (retries).'),
  /** BullMQ lock: a dead agent's job is retried elsewhere after about this long. */
  lockDurationMs: EnvPositiveInt.default(15_000).describe("BullMQ job lock; a dead agent's job is retried elsewhere after about this long."),
  stalledIntervalMs: EnvPositiveInt.default(5_000).describe("How often BullMQ looks for jobs whose lock lapsed (a dead agent's), to retry them elsewhere."),
  /** Tokens arriving within this window after the previous flush go out as one event. */
  /** Even spread over copies: see claimDelay (placement-view.ts). */
  claimSpreadMs: EnvNonNegativeInt.default(2).describe(
    'Spreads jobs over the copies of a model: the claim of an announced job is held back this long for every job of its model already running on this agent, so of the agents that hear the announcement the least busy claims first (0 = the fastest claimer takes it).',
  ),
  // One display frame: no client renders faster. A stream of 60 tokens/s or less still goes out
  // a token an event, each token after the first up to 16 ms later than it came (5 ms before);
  // a faster one (a small model, a compressed replay) merges a few tokens an event, where each
  // event costs a Redis script, a pub/sub fan-out and an SSE write (bench:trace: at 5 ms the
  // relay's CPU saturated a 2-core box in bursts).
  tokenCoalesceMs: EnvNonNegativeInt.default(16).describe('Tokens within this window go out as one event; the first never waits.'),
  /**
   * keep_alive sent with every request and load. The agent, not Ollama's 5-minute timer,
   * owns lifecycle: models stay until the agent unloads them (`-1` = forever).
   */
  keepAlive: z
    .union([z.number(), z.string()])
    // "-1" or "300" from the environment mean seconds; Ollama wants those as numbers.
    .transform((value) => (typeof value === 'string' && /^-?\d+$/.test(value.trim()) ? Number(value) : value))
    .default(-1)
    .describe('`keep_alive` sent with every backend request and load: models stay until the agent unloads them.'),
  /**
   * A backend that hangs without closing (a wedged runner, a stopped process) must not hold
   * a job or the agent for minutes: a stream silent this long mid-answer is a dead backend
   * (the job continues elsewhere), and so is a model-list read that takes this long.
   */
  backendStallMs: EnvPositiveInt.default(15_000).describe(
    'Longest silence between two chunks of a backend answer before the backend counts as hung: the job goes back to its queue (it continues elsewhere) and the agent stops claiming until the backend answers. Time to the first chunk (a model load) is not bounded by this.',
  ),
  backendReadTimeoutMs: EnvPositiveInt.default(5_000).describe(
    "Timeout of the backend's quick reads (/api/tags, /api/ps, /api/show): a backend that does not answer them in this time counts as unreachable (heartbeat `degraded`, no claims).",
  ),
  /** The backend's parallel requests per loaded model (Ollama's OLLAMA_NUM_PARALLEL). */
  backendParallel: EnvPositiveInt.default(1).describe(
    "The backend's parallel requests per model (set it to Ollama's `OLLAMA_NUM_PARALLEL`). The agent never sends a model more at once.",
  ),
  /** Context length models are loaded with (Ollama's default num_ctx), for the VRAM estimate. */
  backendNumCtx: EnvPositiveInt.default(4096).describe('Context length models load with, for the VRAM estimate.'),
  /** Models the backend keeps loaded at once (OLLAMA_MAX_LOADED_MODELS; Ollama: 3 per GPU). 0 = VRAM decides. */
  backendMaxLoaded: EnvNonNegativeInt.default(0).describe('Models the backend keeps at once (`OLLAMA_MAX_LOADED_MODELS`); 0 = VRAM decides.'),
  /** Models loaded at start and never evicted. */
  pinnedModels: z.array(z.string()).default([]).describe('Comma list: loaded at start, never evicted or unloaded.'),
  /** Labels the fleet catalog's placement rules (`on.labels`) match. */
  labels: z
    .preprocess(labelPairs, z.record(LabelKey, LabelValue, { error: 'labels are key=value pairs separated by commas, e.g. gpu=a100,zone=b' }))
    .default({})
    .describe('Comma list of `key=value` labels (`gpu=a100,zone=b`) that catalog entries select nodes by (`on.labels`).'),
  /** Downloads (`/api/pull`) of catalog models at once. */
  pullConcurrency: EnvPositiveInt.default(1).describe('Model downloads (`/api/pull`) the catalog reconciler runs at once on this node.'),
  /** Disk budget for the backend's model storage; 0 = none (the file system of OLLAMA_MODELS, when local, still bounds pulls). */
  modelDiskBytes: ByteSize.pipe(z.number().nonnegative())
    .default(0)
    .describe(
      "Disk budget for models on this node (`500GB`): no pull exceeds it and the catalog's unwanted models are deleted, least recently used first, to make room. 0: no budget; the file system of `OLLAMA_MODELS` bounds pulls when set.",
    ),
  /** The backend's models directory when it runs on this host: its file system gives disk size and free space. */
  ollamaModelsDir: z
    .string()
    .min(1)
    .optional()
    .describe("The backend's models directory when it runs on this host (Ollama's `OLLAMA_MODELS`): its file system's size and free space bound pulls and are reported."),
  /** How often the catalog is re-read (it is also read at once on every change announced). */
  catalogReconcileMs: EnvPositiveInt.default(5_000).describe(
    'How often the fleet catalog is re-read and this node reconciled with it (also at once on every catalog change).',
  ),
  pullRetryBaseMs: EnvPositiveInt.default(2_000).describe('A failed pull is retried after this, doubling with each failure up to `PULL_RETRY_MAX_MS`.'),
  pullRetryMaxMs: EnvPositiveInt.default(300_000).describe('Longest wait between retries of a failed pull.'),
  rolloutCopyGraceMs: EnvPositiveInt.default(10_000).describe(
    'How long the queue of an old build kept during a rollout must stay empty before the copy is deleted: longer than API replicas take to see the rollout move on (their catalog and fleet caches, a heartbeat).',
  ),
  /** A model idle this long (no job running or started) is unloaded. */
  idleUnloadMs: EnvPositiveInt.default(10 * 60_000).describe('A model with no job for this long is unloaded (sliding window).'),
  /** A model is never evicted sooner than this after it was loaded (anti-thrash). */
  minResidencyMs: EnvPositiveInt.default(60_000).describe('No model is evicted sooner than this after loading (anti-thrash).'),
  /** An extra copy (the fleet has others) idle this long is unloaded: back to one copy when demand falls. */
  extraCopyIdleMs: EnvPositiveInt.default(60_000).describe(
    'An idle copy is unloaded this soon when another agent keeps one and a model asked for lately needs its VRAM here (back to one copy).',
  ),
  /** Load throughput assumed before the first load is measured. */
  loadBytesPerSecond: ByteSize.pipe(z.number().positive('must be more than 0 bytes per second'))
    .default(2e9)
    .describe('Load throughput assumed until the first load is measured.'),
  /**
   * A cold model whose oldest job has waited this long, and that fits here only if busy
   * models go, gets room: this node stops taking new jobs of the least valuable of them,
   * lets their running jobs finish, unloads them and loads it (starvation guard). It is also
   * the aging unit of such a drain's displacement rule (busy victims cost more than idle ones).
   */
  drainForColdAfterMs: EnvPositiveInt.default(30_000).describe(
    'Starvation guard: a cold model whose oldest job waited this long, and that fits only if busy models go, gets room (those take no new jobs here, finish, are evicted) when the displacement rule agrees, with the wait aged in units of this setting. Lower it and models thrash; raise it and fewer loads buy longer waits (both measured with `pnpm bench:fleet`, figures in bench/RESULTS.md).',
  ),
  /** A drain that has not freed the room after this long is abandoned. */
  drainTimeoutMs: EnvPositiveInt.default(600_000).describe('A drain that has not freed the room by then is abandoned.'),
  /** Floor on the expected load time, so claim latency is not read as a slow copy. */
  minExpectedLoadMs: EnvPositiveInt.default(250).describe('Floor on the expected load time used by "the queue waited longer than a load".'),
  /** A model whose load failed for lack of memory is not tried again here for this long. */
  unfitCooldownMs: EnvPositiveInt.default(60_000).describe('A model whose load failed for lack of memory is not retried on that node for this long.'),
  /** Time constant of recency in a resident model's value (eviction order). */
  recencyTauMs: EnvPositiveInt.default(120_000).describe(
    "Weight of recency in a resident model's value (eviction order). A model asked for within this long that no node holds is refilled into free VRAM.",
  ),
  /** Horizon over which expected arrivals count in a resident model's value. */
  demandHorizonMs: EnvPositiveInt.default(60_000).describe("Weight of expected demand (arrivals over this horizon) in a resident model's value (eviction order)."),
  /** A waiting model displaces resident ones only when its worth is this many times theirs (hysteresis against ping-pong). */
  displacementMargin: EnvNumber.min(1, 'must be at least 1')
    .default(2)
    .describe(
      'A waiting model displaces resident ones only when its (aged) worth is this many times their value: hysteresis, so two lukewarm models do not evict each other in turn.',
    ),
  /** Once a waiting model's oldest job has waited this long, its worth grows with the square of the wait (in these units); a drain ages by `drainForColdAfterMs` instead. */
  displacementAgingMs: EnvPositiveInt.default(10_000).describe(
    "After this long, a waiting model's worth grows with the square of its wait (in these units), so no job waits for ever behind more valuable models. Shorter: first requests for a new model wait less, models churn more.",
  ),
  /** How often placement decisions (warm, evict, unload) are revisited. */
  placementIntervalMs: EnvPositiveInt.default(250).describe('How often warm/evict/unload decisions are revisited (also on every new-work announcement).'),
  /** Window over which arrival rates (demand) are measured. */
  demandWindowMs: EnvPositiveInt.default(30_000).describe('Window over which arrival rates are measured.'),
  /**
   * How long SIGTERM/SIGINT lets running jobs finish (the agent claims nothing and says
   * `draining` meanwhile); then the rest are handed back to their queues, where another agent
   * continues them, and the process exits 0. A pod's terminationGracePeriodSeconds must cover it.
   */
  agentDrainTimeoutMs: EnvPositiveInt.default(120_000).describe(
    'On SIGTERM/SIGINT, how long running jobs may finish (claiming nothing, heartbeat `draining`) before the rest are handed back to their queues, where another agent continues them, and the agent exits 0. Set terminationGracePeriodSeconds above it. SHUTDOWN_TIMEOUT_MS is read as an older name.',
  ),
  /** Where /healthz, /readyz and /metrics listen (agent-http.ts). */
  httpHost: z
    .string()
    .min(1)
    .default('127.0.0.1')
    .describe(
      'Address of `/healthz`, `/readyz` and `/metrics`: loopback unless set; `0.0.0.0` where a probe or Prometheus reaches the agent from outside (the Dockerfile sets it).',
    ),
  httpPort: EnvNumber.int()
    .min(0)
    .max(65535)
    .default(0)
    .describe(
      'Port of `/healthz`, `/readyz` and `/metrics`. 0 takes a free port (the log line `agent http listening` says which), so agents sharing a host never collide: the tests and bench:fleet run dozens in one process, and `pnpm start` gives each of its agents a free port and lists them. Set a fixed one where a probe or Prometheus must find it (the Dockerfile sets 9464).',
    ),
  logLevel: LogLevel.default('info').describe('pino level.'),
});
export type AgentConfig = z.infer<typeof AgentConfig>;
export type AgentConfigInput = z.input<typeof AgentConfig>;
/** With the checks across the Redis fields (one mode, both halves of Sentinel); `AgentConfig.shape` stays the plain object's. */
const CheckedAgentConfig = AgentConfig.superRefine(checkRedisConnection, REDIS_CONNECTION_CHECK);

/**
 * The environment variable behind each field (docs/configuration.md lists them); errors name the variable. Where
 * two names are listed the first one set wins (OLLAMA_URL is what Ollama users say).
 */
const ENV_NAMES: EnvNames<keyof AgentConfig> = {
  redisUrl: 'REDIS_URL',
  redisClusterNodes: 'REDIS_CLUSTER_NODES',
  ...REDIS_CONNECTION_ENV,
  redisPrefix: 'REDIS_PREFIX',
  allowEvictingRedis: 'ALLOW_EVICTING_REDIS',
  backendUrl: ['BACKEND_URL', 'OLLAMA_URL'],
  agentId: 'AGENT_ID',
  slots: 'AGENT_SLOTS',
  embedSlots: 'EMBED_SLOTS',
  embedBatchMaxInputs: 'EMBED_BATCH_MAX_INPUTS',
  embedBatchWindowMs: 'EMBED_BATCH_WINDOW_MS',
  gpuVramBytes: 'GPU_VRAM',
  gpuName: 'GPU_NAME',
  nvidiaSmiPath: 'NVIDIA_SMI_PATH',
  gpuStatsIntervalMs: 'GPU_STATS_INTERVAL_MS',
  heartbeatIntervalMs: 'HEARTBEAT_INTERVAL_MS',
  heartbeatTtlMs: 'HEARTBEAT_TTL_MS',
  inventoryRefreshMs: 'INVENTORY_REFRESH_MS',
  sweepIntervalMs: 'SWEEP_INTERVAL_MS',
  lockDurationMs: 'LOCK_DURATION_MS',
  stalledIntervalMs: 'STALLED_INTERVAL_MS',
  claimSpreadMs: 'CLAIM_SPREAD_MS',
  tokenCoalesceMs: 'TOKEN_COALESCE_MS',
  keepAlive: 'KEEP_ALIVE',
  backendStallMs: 'BACKEND_STALL_MS',
  backendReadTimeoutMs: 'BACKEND_READ_TIMEOUT_MS',
  backendParallel: 'BACKEND_NUM_PARALLEL',
  backendNumCtx: 'BACKEND_NUM_CTX',
  backendMaxLoaded: 'BACKEND_MAX_LOADED_MODELS',
  pinnedModels: 'PINNED_MODELS',
  labels: 'AGENT_LABELS',
  pullConcurrency: 'PULL_CONCURRENCY',
  modelDiskBytes: 'MODEL_DISK_BYTES',
  ollamaModelsDir: 'OLLAMA_MODELS',
  catalogReconcileMs: 'CATALOG_RECONCILE_MS',
  pullRetryBaseMs: 'PULL_RETRY_BASE_MS',
  pullRetryMaxMs: 'PULL_RETRY_MAX_MS',
  rolloutCopyGraceMs: 'ROLLOUT_COPY_GRACE_MS',
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
  agentDrainTimeoutMs: ['AGENT_DRAIN_TIMEOUT_MS', 'SHUTDOWN_TIMEOUT_MS'],
  httpHost: 'AGENT_HTTP_HOST',
  httpPort: 'AGENT_HTTP_PORT',
  logLevel: 'LOG_LEVEL',
};
/** Fields given as comma lists in the environment. */
const LIST_FIELDS = new Set<keyof AgentConfig>(['gpuVramBytes', 'pinnedModels']);

/** Reads the agent's configuration from environment variables (docs/configuration.md has the table). */
export function loadConfig(env: NodeJS.ProcessEnv): AgentConfig {
  const { values, nameOf } = readEnv(env, ENV_NAMES, LIST_FIELDS);
  // Under Sentinel there is no URL to default to.
  const sentinel = values.redisSentinels !== undefined || values.redisSentinelMaster !== undefined;
  return parseConfig({ ...(!sentinel && { redisUrl: 'redis://127.0.0.1:6379' }), ...values }, nameOf);
}

/** Validates a config object; throws an error that names every bad field. */
export function parseConfig(raw: Record<string, unknown>, nameOf: (field: string) => string = (field) => field): AgentConfig {
  const defined = Object.fromEntries(Object.entries(raw).filter(([, value]) => value !== undefined));
  return parseEnvConfig(CheckedAgentConfig, defined, 'agent', nameOf);
}
