import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { ByteSize } from '@switchyard/protocol';

const positiveInt = z.coerce.number().int().positive();

export const AgentConfig = z.object({
  /** Redis holding the queues. */
  redisUrl: z.string().url(),
  /** Key prefix shared by the API and agents of one deployment. */
  redisPrefix: z.string().regex(/^[A-Za-z0-9._-]+$/).default('sy'),
  /** The Ollama (or gpu-sim) this agent fronts. */
  backendUrl: z.string().url().default('http://127.0.0.1:11434'),
  agentId: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,100}$/, 'agent id may use letters, digits, . _ - only')
    .default(() => `${hostname().replace(/[^A-Za-z0-9._-]/g, '-')}-${randomBytes(3).toString('hex')}`),
  /** Jobs this agent runs at once across all models (its GPU's parallel slots). */
  slots: positiveInt.default(4),
  /** VRAM per GPU when nvidia-smi is absent; a list for several GPUs. */
  gpuVramBytes: z.array(ByteSize).default([24e9]),
  gpuName: z.string().default('configured-gpu'),
  /** Path of nvidia-smi; discovery is skipped when it is not there. */
  nvidiaSmiPath: z.string().default('nvidia-smi'),
  heartbeatIntervalMs: positiveInt.default(2_000),
  /** A missing beat for this long means the agent is gone. */
  heartbeatTtlMs: positiveInt.default(6_000),
  /** How often the backend's model lists are refreshed. */
  inventoryRefreshMs: positiveInt.default(5_000),
  /** Safety sweep over served queues, for jobs no wake-up announced (retries, stalled jobs). */
  sweepIntervalMs: positiveInt.default(500),
  /** BullMQ lock: a dead agent's job is retried elsewhere after about this long. */
  lockDurationMs: positiveInt.default(15_000),
  stalledIntervalMs: positiveInt.default(5_000),
  /** Tokens arriving within this window after the previous flush go out as one event. */
  tokenCoalesceMs: z.coerce.number().int().nonnegative().default(5),
  /** keep_alive sent with every request: the agent, not Ollama's 5-minute timer, owns lifecycle. */
  keepAlive: z.union([z.string(), z.number()]).default('30m'),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type AgentConfig = z.infer<typeof AgentConfig>;
export type AgentConfigInput = z.input<typeof AgentConfig>;

/** Reads the agent's configuration from environment variables (see README for the table). */
export function loadConfig(env: NodeJS.ProcessEnv): AgentConfig {
  const list = (value: string | undefined) =>
    value === undefined ? undefined : value.split(',').map((part) => part.trim()).filter(Boolean);
  const raw = {
    redisUrl: env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    redisPrefix: env.REDIS_PREFIX,
    backendUrl: env.BACKEND_URL ?? env.OLLAMA_URL,
    agentId: env.AGENT_ID,
    slots: env.AGENT_SLOTS,
    gpuVramBytes: list(env.GPU_VRAM),
    gpuName: env.GPU_NAME,
    nvidiaSmiPath: env.NVIDIA_SMI_PATH,
    heartbeatIntervalMs: env.HEARTBEAT_INTERVAL_MS,
    heartbeatTtlMs: env.HEARTBEAT_TTL_MS,
    inventoryRefreshMs: env.INVENTORY_REFRESH_MS,
    sweepIntervalMs: env.SWEEP_INTERVAL_MS,
    lockDurationMs: env.LOCK_DURATION_MS,
    stalledIntervalMs: env.STALLED_INTERVAL_MS,
    tokenCoalesceMs: env.TOKEN_COALESCE_MS,
    keepAlive: env.KEEP_ALIVE,
    logLevel: env.LOG_LEVEL,
  };
  return parseConfig(raw);
}

/** Validates a config object; throws an error that names every bad field. */
export function parseConfig(raw: Record<string, unknown>): AgentConfig {
  const defined = Object.fromEntries(Object.entries(raw).filter(([, value]) => value !== undefined));
  const result = AgentConfig.safeParse(defined);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
    throw new Error(`invalid agent configuration: ${problems.join('; ')}`);
  }
  return result.data;
}
