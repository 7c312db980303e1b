/**
 * The simulator's own view of itself, served at `GET /sim/stats` and returned by
 * `GpuSim.stats()`. Not part of Ollama's API: tests and fleet simulations read it to see
 * what the GPU is doing without guessing from timings.
 */
import { ollamaTimestamp } from '@switchyard/protocol';
import { diskUsedBytes, type SimContext } from './sim-context.js';

export interface LoadedModelStats {
  name: string;
  state: 'loading' | 'ready';
  vram_bytes: number;
  num_ctx: number;
  /** Requests holding a slot right now. */
  in_flight: number;
  /** RFC 3339; Ollama's far-future date for keep_alive < 0; null while still loading. */
  expires_at: string | null;
  /** null = forever. */
  keep_alive_ms: number | null;
}

/** Embedding traffic: `calls` backend calls served, carrying `inputs` inputs (mean batch = inputs / calls). */
export interface EmbedStats {
  /** /api/embed and /api/embeddings requests accepted (load-only ones included). */
  requests: number;
  /** Calls that embedded at least one input, served to the end. */
  calls: number;
  inputs: number;
  prompt_tokens: number;
  /** Inputs cut to the context length (`truncate` true, the default). */
  truncated_inputs: number;
}

export interface SimStats {
  gpu_name: string;
  time_scale: number;
  num_parallel: number;
  requests_total: number;
  tokens_generated_total: number;
  /** Queued plus running. */
  active_requests: number;
  queued_requests: number;
  running_requests: number;
  cancelled_total: number;
  rejected_total: number;
  errors_total: number;
  loads_total: number;
  unloads_total: number;
  evictions_total: number;
  /** Tool calls answered on /api/chat. */
  tool_calls_total: number;
  embed: EmbedStats;
  pull: { started: number; completed: number; failed: number; bytes: number };
  /** Disk for models: total 0 = unlimited. */
  disk: { total_bytes: number; used_bytes: number };
  loaded: LoadedModelStats[];
  vram_used_bytes: number;
  vram_total_bytes: number;
  vram_high_water_bytes: number;
}

export function simStats(ctx: SimContext): SimStats {
  const { counters, scheduler, config } = ctx;
  const queued = scheduler.queuedCount;
  const running = scheduler.runningCount;
  return {
    gpu_name: config.gpu_name,
    time_scale: config.time_scale,
    num_parallel: config.num_parallel,
    requests_total: counters.requestsTotal,
    tokens_generated_total: counters.tokensGeneratedTotal,
    active_requests: queued + running,
    queued_requests: queued,
    running_requests: running,
    cancelled_total: counters.cancelledTotal,
    rejected_total: counters.rejectedTotal,
    errors_total: counters.errorsTotal,
    loads_total: counters.loadsTotal,
    unloads_total: counters.unloadsTotal,
    evictions_total: counters.evictionsTotal,
    tool_calls_total: counters.toolCallsTotal,
    embed: {
      requests: counters.embedRequestsTotal,
      calls: counters.embedCallsTotal,
      inputs: counters.embedInputsTotal,
      prompt_tokens: counters.embedPromptTokensTotal,
      truncated_inputs: counters.embedTruncatedTotal,
    },
    pull: { started: counters.pullsStarted, completed: counters.pullsCompleted, failed: counters.pullsFailed, bytes: counters.pullBytes },
    disk: { total_bytes: config.disk_bytes, used_bytes: diskUsedBytes(ctx.catalog) },
    loaded: scheduler.runnersView().map((runner) => ({
      name: runner.name,
      state: runner.state,
      vram_bytes: runner.vramBytes,
      num_ctx: runner.numCtx,
      in_flight: runner.inFlight,
      // A runner that is still loading has no expiry yet.
      expires_at: Number.isFinite(runner.expiresAt) ? ollamaTimestamp(runner.expiresAt) : null,
      keep_alive_ms: Number.isFinite(runner.keepAliveMs) ? runner.keepAliveMs : null,
    })),
    vram_used_bytes: scheduler.vramUsedBytes,
    vram_total_bytes: config.vram_bytes,
    vram_high_water_bytes: counters.vramHighWaterBytes,
  };
}
