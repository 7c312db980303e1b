import { z } from 'zod';
import { VramProfile } from './vram-need.js';

export const GpuInfo = z.object({
  index: z.number().int().nonnegative(),
  name: z.string(),
  vram_total_bytes: z.number().nonnegative(),
  vram_used_bytes: z.number().nonnegative(),
  // Live figures from nvidia-smi, absent where it has none ([N/A], configured GPUs) and in
  // heartbeats of agents older than them: optional, so those still parse.
  /** GPU busy share over nvidia-smi's last sample period, 0–100. */
  utilization_percent: z.number().min(0).max(100).optional(),
  temperature_c: z.number().optional(),
  power_w: z.number().nonnegative().optional(),
  /** The enforced power cap. */
  power_limit_w: z.number().nonnegative().optional(),
});
export type GpuInfo = z.infer<typeof GpuInfo>;

export const LoadedModel = z.object({
  name: z.string(),
  digest: z.string(),
  vram_bytes: z.number().nonnegative(),
  in_flight: z.number().int().nonnegative(),
  last_used_at: z.number().int().nonnegative(),
  /** When this agent saw it become loaded (ms since epoch). */
  loaded_at: z.number().int().nonnegative().optional(),
  pinned: z.boolean().optional(),
  /** Mean time a job holds a slot of this copy (ms), once a job ran on it. */
  service_ms: z.number().nonnegative().optional(),
});
export type LoadedModel = z.infer<typeof LoadedModel>;

export const AvailableModel = z.object({
  name: z.string(),
  digest: z.string(),
  size_bytes: z.number().nonnegative(),
  /** VRAM the model needs when loaded here: measured once loaded anywhere, else estimated. */
  vram_need_bytes: z.number().nonnegative().optional(),
  vram_need_source: z.enum(['estimate', 'measured']).optional(),
  /** The estimate before measurement, kept so its error stays visible. */
  vram_estimate_bytes: z.number().nonnegative().optional(),
  /** False when the need exceeds this node's total VRAM: it will never load here. */
  fits: z.boolean().optional(),
  /** How the need grows with a job's num_ctx (see jobContextVramBytes); absent when the agent cannot tell. */
  vram_profile: VramProfile.optional(),
});
export type AvailableModel = z.infer<typeof AvailableModel>;

/**
 * A model download (the backend's `/api/pull`) this agent is running or will retry, as its
 * heartbeat reports it. `state`: `queued` (waiting for a pull slot), `pulling`, `verifying`
 * (the download ended; the digest is being checked), `failed` (retried at `retry_at`).
 */
export const ModelPull = z.object({
  model: z.string(),
  /** The build asked for (sha256 hex), when the catalog names one. */
  digest: z.string().optional(),
  state: z.enum(['queued', 'pulling', 'verifying', 'failed']),
  total_bytes: z.number().nonnegative().optional(),
  completed_bytes: z.number().nonnegative().optional(),
  attempts: z.number().int().nonnegative(),
  /** Why the last attempt failed: `disk_full`, `not_found`, `digest_mismatch`, `backend_error`. */
  cause: z.enum(['disk_full', 'not_found', 'digest_mismatch', 'backend_error']).optional(),
  error: z.string().optional(),
  retry_at: z.number().int().optional(),
  started_at: z.number().int(),
});
export type ModelPull = z.infer<typeof ModelPull>;

/** Disk for model storage as the agent accounts it: its budget (`MODEL_DISK_BYTES`) and/or the backend host's file system. */
export const DiskInfo = z.object({
  /** 0 when neither a budget nor the file system is known. */
  total_bytes: z.number().nonnegative(),
  used_bytes: z.number().nonnegative(),
  /** Absent when unknown (no budget, the backend is not local). */
  free_bytes: z.number().nonnegative().optional(),
});
export type DiskInfo = z.infer<typeof DiskInfo>;

/**
 * A load under way on this agent: when it began (evictions made for it included) and how
 * long the agent expects it to take, from the load throughput it measured. The backend
 * reports no progress of its own, so `expected_ms` is what a progress bar is drawn against.
 */
export const LoadProgress = z.object({
  model: z.string(),
  started_at: z.number().int(),
  expected_ms: z.number().nonnegative(),
});
export type LoadProgress = z.infer<typeof LoadProgress>;

/**
 * One load, failed load or unload on this agent, as its lifecycle manager decided it:
 * `reason` is why (`no_copy`, `queue_too_old`, `refill`, … for loads; `evicted for <model>`,
 * `idle`, `extra_copy` for unloads), the same words its metrics count by.
 */
export const LifecycleEvent = z.object({
  at: z.number().int(),
  kind: z.enum(['loaded', 'load_failed', 'unloaded']),
  model: z.string(),
  reason: z.string(),
  /** How long a successful load took. */
  seconds: z.number().nonnegative().optional(),
  /** A failed load the backend refused for memory. */
  out_of_memory: z.boolean().optional(),
});
export type LifecycleEvent = z.infer<typeof LifecycleEvent>;

/** `degraded`: its backend does not answer; it claims nothing until it does (and is not counted as serving). */
export const AgentState = z.enum(['ready', 'draining', 'degraded']);
export type AgentState = z.infer<typeof AgentState>;

/** The record each agent writes to Redis with a TTL; a missing record means the agent is gone. */
export const AgentHeartbeat = z.object({
  id: z.string().min(1),
  version: z.string(),
  state: AgentState,
  backend: z.object({ kind: z.enum(['ollama', 'openai']), url: z.string() }),
  gpus: z.array(GpuInfo),
  slots: z.number().int().positive(),
  in_flight: z.number().int().nonnegative(),
  models_loaded: z.array(LoadedModel),
  models_available: z.array(AvailableModel),
  /** Models this agent is loading right now (it holds their warm lease). */
  models_loading: z.array(z.string()).optional(),
  /**
   * Disk → VRAM throughput this node measured on its loads (bytes/s), once it has loaded
   * anything: a peer that never loaded a model estimates its load time from these rather
   * than from the configured prior.
   */
  load_bytes_per_s: z.number().positive().optional(),
  /** The load under way here, with its start and expected duration (the fleet page's progress bar). */
  loads_in_progress: z.array(LoadProgress).optional(),
  /** The last loads and unloads here (a short bounded list, oldest first): what the fleet page shows as recent activity. */
  lifecycle_log: z.array(LifecycleEvent).optional(),
  /** VRAM of the node as the agent accounts it (all GPUs together). */
  vram: z.object({ total_bytes: z.number().nonnegative(), used_bytes: z.number().nonnegative(), free_bytes: z.number().nonnegative() }).optional(),
  /** `AGENT_LABELS` (`gpu=a100,zone=b`): what catalog placement rules (`on.labels`) match. */
  labels: z.record(z.string(), z.string()).optional(),
  disk: DiskInfo.optional(),
  /** Downloads running, queued or failing (the catalog's reconciler). */
  pulls: z.array(ModelPull).optional(),
  /**
   * Old builds kept servable during a rollout under a copy's name (not in `models_available`,
   * which lists each model's own build): they serve only jobs pinned to their digest.
   */
  kept_builds: z
    .array(z.object({ model: z.string(), digest: z.string(), size_bytes: z.number().nonnegative(), loaded: z.boolean(), in_flight: z.number().int().nonnegative() }))
    .optional(),
  /** Per-build totals of the jobs this agent ended since it started: what a rollout's status compares. */
  build_stats: z
    .array(
      z.object({
        model: z.string(),
        digest: z.string(),
        jobs: z.number().int().nonnegative(),
        failed: z.number().int().nonnegative(),
        ttft_ms_sum: z.number().nonnegative(),
        completion_tokens: z.number().int().nonnegative(),
        generate_ms_sum: z.number().nonnegative(),
      }),
    )
    .optional(),
  started_at: z.number().int(),
  updated_at: z.number().int(),
});
export type AgentHeartbeat = z.infer<typeof AgentHeartbeat>;
