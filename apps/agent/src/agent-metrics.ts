import { UnrecoverableError, type Job, type Processor } from 'bullmq';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { BackendError, type Backend } from '@switchyard/backends';
import { AgentState, parseJobFailure, queueNameToModel, splitQueueModel, type AgentHeartbeat, type JobResult } from '@switchyard/protocol';

const AGENT_STATES = AgentState.options;

/** A load takes milliseconds on the simulator, seconds for a small model, minutes for a 70B from a slow disk. */
export const LOAD_BUCKETS_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];
/** A placement round is a few Redis reads: milliseconds, more when Redis or the event loop is slow. */
export const ROUND_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** What the lifecycle manager reports as it loads, unloads and plans; see `LifecycleOptions.metrics`. */
export interface LifecycleMetrics {
  modelLoaded(model: string, reason: string, seconds: number): void;
  loadFailed(model: string, reason: string, outOfMemory: boolean): void;
  modelUnloaded(model: string, reason: string): void;
  /** A warm this agent left to the agent that holds the model's warm lease. */
  leaseHeld(model: string): void;
  /** Starts timing one placement round; call the result when it ends. */
  placementRound(): () => void;
}

export interface AgentMetrics extends LifecycleMetrics {
  /** This agent's series and the process's (shared by every agent of the process), as one registry. */
  readonly registry: Registry;
  /** The backend, counting every failed call in `switchyard_agent_backend_errors_total`. */
  backend<T extends Backend>(backend: T): T;
  /** The BullMQ processor, counting each job it is handed (a claim) and how it ended. */
  /** `buildOf`: the digest of the build that serves a queue key here (per-build figures, which a rollout compares). */
  jobs(processor: Processor<unknown, JobResult>, buildOf?: (queueKey: string) => string | undefined): Processor<unknown, JobResult>;
  /** Per-build totals since start, for the heartbeat (`build_stats`): what a rollout's status compares across the fleet. */
  buildStats(): BuildStats[];
  /** Scrape-time gauges (running jobs, slots, VRAM, models loaded, GPU figures, state) read from the heartbeat this agent would publish. */
  watchNode(heartbeat: () => AgentHeartbeat): void;
  /** Scrape-time gauges of this agent's links to the fleet: its Redis connection and the age of its last heartbeat in Redis. */
  watchLinks(links: AgentLinks): void;
}

export interface BuildStats {
  model: string;
  digest: string;
  jobs: number;
  failed: number;
  ttft_ms_sum: number;
  completion_tokens: number;
  generate_ms_sum: number;
}

export interface AgentLinks {
  redisConnected(): boolean;
  /** When a heartbeat last reached Redis (ms since epoch), if one has. */
  lastHeartbeatAt(): number | undefined;
  /** HEARTBEAT_TTL_MS: a heartbeat older than this has expired, and the fleet no longer sees the agent. */
  heartbeatTtlMs: number;
  /** When the agent started: the heartbeat's age counts from here until the first one lands. */
  startedAt: number;
}

/**
 * A reason as a label value: its leading word, so `evicted for llama3.1:8b` is `evicted` and
 * `starving 42 s` is `starving` (a label must not carry a model name or a number).
 */
export function reasonLabel(reason: string): string {
  return /^[a-z_]+/.exec(reason)?.[0] ?? 'other';
}

/**
 * How a job's attempt on this agent ended: `completed`, the error code it failed with
 * (`cancelled`, `backend_error`, `deadline_exceeded`…), or `interrupted` when it ended with
 * no outcome of its own (another attempt holds the job, or Redis failed) and BullMQ retries it.
 */
export function jobOutcome(error: unknown): string {
  return error instanceof UnrecoverableError ? parseJobFailure(error.message).code : 'interrupted';
}

/** A failed backend call as a label value: Ollama refusing for memory, else the client's code (`unavailable`: no answer). */
export function backendErrorCode(error: unknown): string {
  if (!(error instanceof BackendError)) return 'other';
  return error.outOfMemory ? 'out_of_memory' : error.code;
}

/** Backend calls that count when they fail; `close` and `generate` (counted while it streams) are not among them. */
const BACKEND_CALLS = new Set(['version', 'listModels', 'listLoaded', 'show', 'load', 'unload']);

let processRegistry: Registry | undefined;
/**
 * Default process metrics, collected once per process: they describe the process, and the
 * tests and bench:fleet run dozens of agents in one (each collector would start its own
 * event-loop monitor).
 */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: 'switchyard_agent_' });
  }
  return processRegistry;
}

/**
 * The agent's Prometheus series, on a registry of its own (never the global one): what it
 * claimed, how its jobs ended, its loads and unloads, backend errors, warm-lease waits,
 * placement round time, and gauges read from its heartbeat at scrape time. Counted where
 * they happen through the hooks below; no job id is a label.
 */
export function createAgentMetrics(registry: Registry = new Registry()): AgentMetrics {
  const registers = [registry];
  const claims = new Counter({
    name: 'switchyard_agent_claims_total',
    help: 'Jobs this agent claimed, by queue (the model, or model@digest for jobs pinned to a build)',
    labelNames: ['queue'],
    registers,
  });
  const jobsFinished = new Counter({
    name: 'switchyard_agent_jobs_finished_total',
    help: 'Job attempts this agent ended, by outcome: completed, the error code it failed with (cancelled, backend_error, deadline_exceeded, …), or interrupted (no outcome of its own: another attempt holds the job, or Redis failed; BullMQ retries it)',
    labelNames: ['model', 'outcome'],
    registers,
  });
  // Per build (digest): what a rollout's canary is judged on. Twelve hex digits name a build
  // as `ollama list` shows it, and keep the label short.
  const buildJobs = new Counter({
    name: 'switchyard_agent_build_jobs_total',
    help: 'Job attempts this agent ended, by model, build (first 12 hex of the digest) and outcome (completed, or the error code): a rollout compares error rates per build',
    labelNames: ['model', 'digest', 'outcome'],
    registers,
  });
  const buildTtft = new Histogram({
    name: 'switchyard_agent_build_ttft_seconds',
    help: 'Time from claim to first token of completed jobs, by model and build: a rollout compares builds',
    labelNames: ['model', 'digest'],
    buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const buildTokensPerS = new Histogram({
    name: 'switchyard_agent_build_tokens_per_second',
    help: 'Generation speed of completed jobs (completion tokens over the time after the first token), by model and build',
    labelNames: ['model', 'digest'],
    buckets: [5, 10, 20, 40, 80, 160, 320, 640],
    registers,
  });
  const buildTotals = new Map<string, BuildStats>();
  const countBuild = (model: string, digest: string, outcome: string, result?: JobResult) => {
    const label = digest.replace(/^sha256:/, '').slice(0, 12);
    buildJobs.inc({ model, digest: label, outcome });
    const key = `${model}@${digest}`;
    let totals = buildTotals.get(key);
    if (!totals) buildTotals.set(key, (totals = { model, digest, jobs: 0, failed: 0, ttft_ms_sum: 0, completion_tokens: 0, generate_ms_sum: 0 }));
    totals.jobs++;
    if (outcome !== 'completed' && outcome !== 'cancelled' && outcome !== 'interrupted') totals.failed++;
    if (!result) return;
    const { ttft_ms: ttftMs, total_ms: totalMs, queued_ms: queuedMs } = result.timings;
    // From claim: the time the job queued is the fleet's, not the build's.
    const firstTokenMs = Math.max(0, ttftMs - queuedMs);
    buildTtft.observe({ model, digest: label }, firstTokenMs / 1000);
    totals.ttft_ms_sum += firstTokenMs;
    const generateMs = Math.max(0, totalMs - ttftMs);
    if (result.usage.completion_tokens > 0 && generateMs > 0) {
      buildTokensPerS.observe({ model, digest: label }, result.usage.completion_tokens / (generateMs / 1000));
      totals.completion_tokens += result.usage.completion_tokens;
      totals.generate_ms_sum += generateMs;
    }
  };
  const loads = new Counter({
    name: 'switchyard_agent_model_loads_total',
    help: 'Model loads this agent made, by why (no_copy, queue_too_old, cannot_drain, demand_rising, refill, pinned, starving) and outcome (loaded, failed, out_of_memory)',
    labelNames: ['model', 'reason', 'outcome'],
    registers,
  });
  const loadSeconds = new Histogram({
    name: 'switchyard_agent_model_load_seconds',
    help: 'Duration of the loads that succeeded (the backend load call, after any evictions)',
    labelNames: ['model'],
    buckets: LOAD_BUCKETS_SECONDS,
    registers,
  });
  const unloads = new Counter({
    name: 'switchyard_agent_model_unloads_total',
    help: 'Models this agent unloaded, by reason: evicted (to make room for a load), idle, extra_copy (another agent keeps one)',
    labelNames: ['model', 'reason'],
    registers,
  });
  const backendErrors = new Counter({
    name: 'switchyard_agent_backend_errors_total',
    help: 'Backend calls that failed, by call (generate, load, unload, listModels, listLoaded, show, version) and code (unavailable: no answer; out_of_memory; model_not_found; busy; bad_request; backend_error; other). A cancelled generation is not one.',
    labelNames: ['operation', 'code'],
    registers,
  });
  const leaseWaits = new Counter({
    name: 'switchyard_agent_warm_lease_waits_total',
    help: "Warms this agent left to another agent because that one held the model's warm lease (it is loading the model)",
    labelNames: ['model'],
    registers,
  });
  const placementRounds = new Histogram({
    name: 'switchyard_agent_placement_round_seconds',
    help: 'Duration of a placement round (fleet read, idle unloads, the warm decision; the load it starts is not included)',
    buckets: ROUND_BUCKETS_SECONDS,
    registers,
  });

  let heartbeat: (() => AgentHeartbeat) | undefined;
  const nodeGauge = (name: string, help: string, read: (beat: AgentHeartbeat) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        if (heartbeat) this.set(read(heartbeat()));
      },
    });
  nodeGauge('switchyard_agent_jobs_running', 'Jobs running on this agent now', (beat) => beat.in_flight);
  nodeGauge('switchyard_agent_slots', 'Jobs this agent runs at once at most (AGENT_SLOTS)', (beat) => beat.slots);
  nodeGauge('switchyard_agent_models_loaded', 'Models resident on this agent’s backend', (beat) => beat.models_loaded.length);
  nodeGauge('switchyard_agent_vram_total_bytes', 'VRAM of the node (all GPUs)', (beat) => beat.vram?.total_bytes ?? 0);
  nodeGauge('switchyard_agent_vram_used_bytes', 'VRAM held by resident models and a load in progress, as this agent accounts it', (beat) => beat.vram?.used_bytes ?? 0);

  // Series read from the heartbeat per label set: reset at each scrape, so a model unloaded or
  // a figure nvidia-smi stopped giving leaves no stale series behind.
  const labelledGauge = <L extends string>(name: string, help: string, labelNames: L[], rows: (beat: AgentHeartbeat) => Array<[Record<L, string>, number | undefined]>) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        if (!heartbeat) return;
        for (const [labels, value] of rows(heartbeat())) if (value !== undefined) this.set(labels, value);
      },
    });
  labelledGauge('switchyard_agent_model_vram_bytes', 'VRAM each resident model holds on this agent’s backend', ['model'], (beat) =>
    beat.models_loaded.map((model) => [{ model: model.name }, model.vram_bytes]),
  );
  labelledGauge(
    'switchyard_agent_state',
    'This agent’s state as its heartbeat says it: 1 for the current one of ready, draining, degraded (backend not answering)',
    ['state'],
    (beat) => AGENT_STATES.map((state) => [{ state }, beat.state === state ? 1 : 0]),
  );
  // GPU figures from nvidia-smi (GPU_STATS_INTERVAL_MS); absent for configured GPUs and for a
  // figure nvidia-smi has none of ([N/A]), so a dashboard shows a gap rather than a made-up 0.
  const gpuGauge = (name: string, help: string, read: (gpu: AgentHeartbeat['gpus'][number]) => number | undefined) =>
    labelledGauge(name, help, ['gpu', 'name'], (beat) => beat.gpus.map((gpu) => [{ gpu: String(gpu.index), name: gpu.name }, read(gpu)]));
  gpuGauge('switchyard_agent_gpu_utilization_ratio', 'Share of the last sample period the GPU was busy (nvidia-smi utilization.gpu / 100)', (gpu) =>
    gpu.utilization_percent === undefined ? undefined : gpu.utilization_percent / 100,
  );
  gpuGauge('switchyard_agent_gpu_temperature_celsius', 'GPU core temperature (nvidia-smi temperature.gpu)', (gpu) => gpu.temperature_c);
  gpuGauge('switchyard_agent_gpu_power_watts', 'GPU power draw (nvidia-smi power.draw)', (gpu) => gpu.power_w);
  gpuGauge('switchyard_agent_gpu_power_limit_watts', 'Enforced GPU power cap (nvidia-smi power.limit)', (gpu) => gpu.power_limit_w);
  gpuGauge('switchyard_agent_gpu_vram_total_bytes', 'VRAM of each GPU (nvidia-smi memory.total, or GPU_VRAM_BYTES)', (gpu) => gpu.vram_total_bytes);
  gpuGauge(
    'switchyard_agent_gpu_vram_used_bytes',
    'VRAM in use on each GPU: nvidia-smi memory.used (every process on the GPU), or this agent’s own account on configured GPUs',
    (gpu) => gpu.vram_used_bytes,
  );

  let links: AgentLinks | undefined;
  const linkGauge = (name: string, help: string, read: (link: AgentLinks) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        if (links) this.set(read(links));
      },
    });
  linkGauge('switchyard_agent_redis_connected', 'Whether this agent’s Redis command connection is up (1) or not (0)', (link) => (link.redisConnected() ? 1 : 0));
  linkGauge(
    'switchyard_agent_heartbeat_age_seconds',
    'Seconds since this agent’s heartbeat last reached Redis (since start before the first); past switchyard_agent_heartbeat_ttl_seconds the fleet no longer sees the agent',
    (link) => (Date.now() - (link.lastHeartbeatAt() ?? link.startedAt)) / 1000,
  );
  linkGauge(
    'switchyard_agent_heartbeat_ttl_seconds',
    'HEARTBEAT_TTL_MS in seconds: how old a heartbeat may get before the fleet drops the agent',
    (link) => link.heartbeatTtlMs / 1000,
  );

  const countBackend = (operation: string, error: unknown) => backendErrors.inc({ operation, code: backendErrorCode(error) });

  return {
    registry: Registry.merge([processMetrics(), registry]),
    modelLoaded: (model, reason, seconds) => {
      loads.inc({ model, reason: reasonLabel(reason), outcome: 'loaded' });
      loadSeconds.observe({ model }, seconds);
    },
    loadFailed: (model, reason, outOfMemory) => loads.inc({ model, reason: reasonLabel(reason), outcome: outOfMemory ? 'out_of_memory' : 'failed' }),
    modelUnloaded: (model, reason) => unloads.inc({ model, reason: reasonLabel(reason) }),
    leaseHeld: (model) => leaseWaits.inc({ model }),
    placementRound: () => placementRounds.startTimer(),
    watchNode: (read) => {
      heartbeat = read;
    },
    watchLinks: (read) => {
      links = read;
    },
    backend<T extends Backend>(backend: T): T {
      return new Proxy(backend, {
        get(target, property) {
          const value: unknown = Reflect.get(target, property, target);
          if (typeof value !== 'function') return value;
          if (property === 'generate') {
            return (...args: Parameters<Backend['generate']>) => countedStream(target.generate(...args), args[1], (error) => countBackend('generate', error));
          }
          if (typeof property !== 'string' || !BACKEND_CALLS.has(property)) return value.bind(target);
          return (...args: unknown[]) =>
            (value as (...inner: unknown[]) => Promise<unknown>).apply(target, args).catch((error: unknown) => {
              countBackend(property, error);
              throw error;
            });
        },
      });
    },
    buildStats: () => [...buildTotals.values()].map((totals) => ({ ...totals })),
    jobs(processor, buildOf) {
      // Three declared parameters, like the processor's: BullMQ passes the cancellation signal only to one that declares it.
      return async (job: Job<unknown, JobResult>, token?: string, signal?: AbortSignal) => {
        const queue = queueKeyOf(job.queueName);
        const model = splitQueueModel(queue).model;
        claims.inc({ queue });
        try {
          const result = await processor(job, token, signal);
          jobsFinished.inc({ model, outcome: 'completed' });
          const digest = buildOf?.(queue);
          if (digest !== undefined) countBuild(model, digest, 'completed', result);
          return result;
        } catch (error) {
          jobsFinished.inc({ model, outcome: jobOutcome(error) });
          const digest = buildOf?.(queue);
          if (digest !== undefined) countBuild(model, digest, jobOutcome(error));
          throw error;
        }
      };
    },
  };
}

/** A queue's key (model, or model@digest) from its BullMQ name; the name itself if it is not one of ours. */
function queueKeyOf(queueName: string): string {
  try {
    return queueNameToModel(queueName);
  } catch {
    return queueName;
  }
}

/**
 * The stream as it was, counting its failure unless the caller aborted it (a cancel is no
 * backend error). An iterator that forwards each call rather than an async generator around
 * the stream, which adds a generator resumption (and its promises) per token of every job.
 * An early exit (`return`) reaches the backend's stream, which closes its request.
 */
function countedStream<T>(stream: AsyncIterable<T>, signal: AbortSignal | undefined, count: (error: unknown) => void): AsyncIterable<T> {
  const failed = (error: unknown): never => {
    if (!signal?.aborted) count(error);
    throw error;
  };
  const counted = <R>(call: () => Promise<R>): Promise<R> => {
    try {
      return call().catch(failed);
    } catch (error) {
      return Promise.reject(error).catch(failed);
    }
  };
  return {
    [Symbol.asyncIterator]() {
      let inner: AsyncIterator<T>;
      try {
        inner = stream[Symbol.asyncIterator]();
      } catch (error) {
        return { next: () => Promise.reject(error).catch(failed) };
      }
      return {
        next: () => counted(() => inner.next()),
        return: (value?: unknown) => (inner.return ? counted(() => inner.return!(value)) : Promise.resolve({ done: true as const, value: value as T })),
      };
    },
  };
}
