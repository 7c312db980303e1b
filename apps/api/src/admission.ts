import type { RedisConnection } from '@switchyard/redis';
import type { Logger } from 'pino';
import { ApiErrorCode, rolloutBuildFor, splitQueueModel, type AgentHeartbeat, type CatalogEntry, type GenerationOptions, type JobPriority } from '@switchyard/protocol';
import type { AdmissionLedger, AdmissionTuning, AdmitResult, EstimateRequest, ModelCatalogStore, ModelLedgerStats, RefusalCode } from '@switchyard/redis';
import type { ApiKeyStore } from './auth.js';
import type { UnservedDemand } from './backlog.js';
import type { ApiConfig } from './config.js';
import { ApiError } from './errors.js';
import type { FleetView } from './fleet-view.js';
import type { ApiMetrics } from './metrics.js';
import { placeModel, type ModelPlacement } from './model-admission.js';

/** Without a measured cold start, a load is estimated at the simulator's and a fast NVMe's rate, plus a runner start. */
const DEFAULT_LOAD_BYTES_PER_S = 2e9;
const DEFAULT_LOAD_OVERHEAD_MS = 500;
/** How often measured load times and "model seen" marks are exchanged with Redis. */
const SHARED_STATE_REFRESH_MS = 5_000;
const RATE_SAMPLES = 20;

export interface AdmissionDeps {
  redis: RedisConnection;
  ledger: AdmissionLedger;
  fleet: FleetView;
  keyStore: ApiKeyStore;
  config: ApiConfig;
  metrics: ApiMetrics;
  logger: Logger;
  /** The fleet catalog's entries (read through a short cache): a model in a rollout routes unpinned jobs to a build. */
  catalogEntries?: () => Promise<CatalogEntry[]>;
  /** Picks canary jobs; injectable for tests. */
  random?: () => number;
  /** A model in the catalog answers `503 no_capacity` while no agent serves it, never `404`. */
  catalog?: Pick<ModelCatalogStore, 'get'>;
  /** Where refused demand for a model that should come back is counted (the backlog's `unserved`). */
  unserved?: Pick<UnservedDemand, 'note'>;
}

export interface Reservation {
  /** Queue key the job goes to. */
  queueKey: string;
  result: Extract<AdmitResult, { kind: 'admitted' } | { kind: 'duplicate' }>;
}

const REFUSAL_TEXT: Record<RefusalCode, (r: { model: string; tenant: string; depth: number; limit: number; current: number }) => string> = {
  queue_full: (r) => `the queue of model ${r.model} is full (${r.depth} waiting, limit ${r.limit})`,
  tenant_limit: (r) => `tenant ${r.tenant} has ${r.current} jobs in flight (limit ${r.limit})`,
  tenant_model_limit: (r) => `tenant ${r.tenant} has ${r.current} jobs in flight on model ${r.model} (limit ${r.limit})`,
  global_limit: (r) => `the fleet has ${r.current} jobs in flight (limit ${r.limit})`,
  deadline_unreachable: (r) => `the estimated wait of ${(r.current / 1000).toFixed(1)} s exceeds the deadline of ${(r.limit / 1000).toFixed(1)} s`,
};

/**
 * Admission, in the documented order after schema and auth: the fleet can serve the model
 * (404 / 422 / 503), then the limits and the deadline in one atomic script (429).
 * Refusals carry Retry-After and X-Queue-Depth and are counted by reason and model.
 */
export class Admission {
  private loadMs = new Map<string, number>();
  private loadMsReadAt = 0;
  private seenWrittenAt = 0;
  readonly tuning: AdmissionTuning;

  constructor(private readonly deps: AdmissionDeps) {
    const { config } = deps;
    this.tuning = {
      drainWindowMs: config.drainWindowSeconds * 1000,
      rateSamples: RATE_SAMPLES,
      batchOffsetMs: Math.round(config.batchPriorityOffsetSeconds * 1000),
      fairStepMs: Math.round(config.fairShareStepSeconds * 1000),
      retryCapMs: config.retryAfterMaxSeconds * 1000,
      retryFallbackMs: config.retryAfterFallbackSeconds * 1000,
      epochMaxAgeMs: 24 * 3600_000,
    };
  }

  /**
   * During a rollout (packages/protocol/src/model-catalog.ts `rolloutBuildFor`) an unpinned
   * job goes to the old build until enough nodes hold the new one, to the canary's share of
   * the new one, then to the new one; it waits on that build's pinned queue.
   */
  private async rolloutBuild(model: string, live: AgentHeartbeat[]): Promise<string | undefined> {
    if (!this.deps.catalogEntries) return undefined;
    let entries: CatalogEntry[];
    try {
      entries = await this.deps.catalogEntries();
    } catch (error) {
      // The submit path reads Redis next anyway; a failed catalog read leaves the job unpinned.
      this.deps.logger.warn({ err: error }, 'could not read the fleet catalog; placing the job unpinned');
      return undefined;
    }
    const entry = entries.find((candidate) => candidate.name === model);
    if (!entry?.rollout || entry.rollout.finished_at !== undefined) return undefined;
    return rolloutBuildFor(entry, live, (this.deps.random ?? Math.random)());
  }

  /**
   * Step 3: the fleet can serve the model, with the context the job's options ask; which queue
   * the job goes to. `demand` (gives the request's fingerprint, see `demandFingerprint`; computed only on a refusal) is counted
   * in the backlog when the refusal is a `503 no_capacity` for a model that should come back,
   * so a scaler sees it.
   */
  async place(model: string, digest: string | undefined, options?: GenerationOptions, demand?: () => string): Promise<ModelPlacement> {
    const agents = await this.deps.fleet.agents();
    this.noteFleet(agents);
    const live = agents.filter((agent) => agent.state === 'ready');
    if (live.length === 0) {
      this.deps.metrics.jobsRefused.inc({ model, reason: ApiErrorCode.noCapacity });
      if (demand !== undefined && (await this.capacityMayReturn(model, agents))) await this.noteUnserved(model, demand);
      const why = agents.length > 0 ? 'every live agent is draining or degraded' : 'no agent is live';
      throw new ApiError(ApiErrorCode.noCapacity, `${why}; the fleet cannot take work right now`, this.deps.config.retryAfterFallbackSeconds);
    }
    if (digest === undefined) {
      const build = await this.rolloutBuild(model, live);
      if (build !== undefined) {
        try {
          return placeModel(live, model, build, options);
        } catch {
          // The build went from the fleet since the heartbeats were read: place it unpinned.
        }
      }
    }
    try {
      return placeModel(live, model, digest, options);
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.code === ApiErrorCode.modelNotFound && !live.some((agent) => agent.models_available.some((m) => m.name === model))) {
        // Agents that could serve it exist (draining, or seen lately) or the catalog wants it,
        // but no live agent has it: come back, not "no such model".
        const comeback = await this.capacityMayReturn(model, agents);
        if (comeback) {
          this.deps.metrics.jobsRefused.inc({ model, reason: ApiErrorCode.noCapacity });
          if (demand !== undefined) await this.noteUnserved(model, demand);
          const retryS = Math.max(this.deps.config.retryAfterFallbackSeconds, (await this.loadEstimateMs(model, [])) / 1000);
          throw new ApiError(ApiErrorCode.noCapacity, `no live agent serves model ${model} right now (${comeback}); it should be back`, retryS);
        }
      }
      this.deps.metrics.jobsRefused.inc({ model: error.code === ApiErrorCode.modelNotFound ? 'unknown' : model, reason: error.code });
      throw error;
    }
  }

  /** A refusal must answer even when counting it fails: the count only feeds a scaler. */
  private async noteUnserved(model: string, demand: () => string): Promise<void> {
    await this.deps.unserved?.note(model, demand()).catch((error: unknown) => this.deps.logger.warn({ err: error, model }, 'could not count refused demand in the backlog'));
  }

  /** Steps 4-7 and the reservation, atomically. A duplicate idempotency key answers the first job instead. */
  async reserve(input: {
    jobId: string;
    queueKey: string;
    tenant: string;
    priority: JobPriority;
    deadlineMs?: number;
    detach: boolean;
    idempotencyKey?: string;
    overwriteIdempotency?: boolean;
  }): Promise<Reservation['result']> {
    const { config } = this.deps;
    const agents = await this.deps.fleet.agents();
    const tenantLimits = this.deps.keyStore.tenantLimits(input.tenant);
    const result = await this.deps.ledger.admit({
      jobId: input.jobId,
      model: input.queueKey,
      tenant: input.tenant,
      priority: input.priority,
      ...(input.deadlineMs !== undefined && { deadlineMs: input.deadlineMs }),
      detach: input.detach,
      loadMs: await this.loadEstimateMs(input.queueKey, agents),
      capacity: this.capacity(input.queueKey, agents),
      ...(input.idempotencyKey !== undefined && { idempotencyKey: input.idempotencyKey }),
      idempotencyTtlS: config.idempotencyWindowSeconds,
      ...(input.overwriteIdempotency && { overwriteIdempotency: true }),
      limits: {
        queueDepth: config.queueDepthLimit,
        tenantInFlight: config.tenantInFlightLimit,
        ...(tenantLimits.inFlight !== undefined && { tenantInFlightOverride: tenantLimits.inFlight }),
        tenantModelInFlight: config.tenantModelInFlightLimit,
        ...(tenantLimits.modelInFlight !== undefined && { tenantModelInFlightOverride: tenantLimits.modelInFlight }),
        globalInFlight: config.globalInFlightLimit,
      },
      tuning: this.tuning,
    });
    if (result.kind !== 'refused') return result;
    this.deps.metrics.jobsRefused.inc({ model: input.queueKey, reason: result.code });
    const retryS = result.retryAfterMs / 1000;
    const text = REFUSAL_TEXT[result.code]({ model: input.queueKey, tenant: input.tenant, depth: result.depth, limit: result.limit, current: result.current });
    throw new ApiError(result.code, `${text}; retry in ${Math.max(1, Math.ceil(retryS))} s`, retryS, { 'X-Queue-Depth': String(result.depth) });
  }

  /** GPU slots of ready agents that have the model loaded (or, when none has, that could load it). */
  capacity(queueKey: string, agents: AgentHeartbeat[]): number {
    const { model } = splitQueueModel(queueKey);
    const ready = agents.filter((agent) => agent.state === 'ready');
    const warm = ready.filter((agent) => agent.models_loaded.some((m) => m.name === model));
    const holders = warm.length > 0 ? warm : ready.filter((agent) => agent.models_available.some((m) => m.name === model));
    return holders.reduce((sum, agent) => sum + agent.slots, 0);
  }

  /** 0 when a copy is warm on a ready agent; else the measured cold-start time, or one from the model's size. */
  async loadEstimateMs(queueKey: string, agents: AgentHeartbeat[]): Promise<number> {
    const { model } = splitQueueModel(queueKey);
    const ready = agents.filter((agent) => agent.state === 'ready');
    if (ready.some((agent) => agent.models_loaded.some((m) => m.name === model) || agent.models_loading?.includes(model))) return 0;
    await this.refreshLoadTimes();
    const measured = this.loadMs.get(queueKey) ?? this.loadMs.get(model);
    if (measured !== undefined) return measured;
    const size = Math.max(0, ...agents.flatMap((agent) => agent.models_available.filter((m) => m.name === model).map((m) => m.size_bytes)));
    return DEFAULT_LOAD_OVERHEAD_MS + (size / DEFAULT_LOAD_BYTES_PER_S) * 1000;
  }

  /**
   * Stats of the ledger. With `positions` (queue key → queue positions), also the estimated
   * wait of each: the ledger script computes it by admission's own rule (lua/includes/
   * wait-estimate.lua) from the capacity and load time the fleet gives here.
   */
  async modelStats(queueKeys: string[], positions?: ReadonlyMap<string, number[]>): Promise<Map<string, ModelLedgerStats>> {
    let estimates: Map<string, EstimateRequest> | undefined;
    if (positions && positions.size > 0) {
      const agents = await this.deps.fleet.agents();
      estimates = new Map();
      for (const [queueKey, wanted] of positions) {
        estimates.set(queueKey, { capacity: this.capacity(queueKey, agents), loadMs: await this.loadEstimateMs(queueKey, agents), positions: wanted });
      }
    }
    return this.deps.ledger.stats(queueKeys, this.tuning.drainWindowMs, RATE_SAMPLES, Date.now(), estimates);
  }

  /** Estimated seconds until a job at `position` starts, from stats that were asked for it; undefined without a drain rate. */
  etaSeconds(stats: ModelLedgerStats | undefined, position: number): number | undefined {
    const ms = stats?.waitMs?.get(position);
    return ms === undefined ? undefined : Math.round(ms / 100) / 10;
  }

  private async refreshLoadTimes(): Promise<void> {
    if (Date.now() - this.loadMsReadAt < SHARED_STATE_REFRESH_MS) return;
    this.loadMsReadAt = Date.now();
    try {
      const raw = await this.deps.redis.hgetall(this.deps.ledger.keys.loadMs);
      this.loadMs = new Map(Object.entries(raw).map(([model, ms]) => [model, Number(ms)]));
    } catch (error) {
      this.deps.logger.debug({ err: error }, 'could not read measured load times');
    }
  }

  /** Notes, fleet-wide, which models agents list, so a model whose agents are all gone answers 503 (come back), not 404. */
  noteFleet(agents: AgentHeartbeat[]): void {
    const now = Date.now();
    if (now - this.seenWrittenAt < SHARED_STATE_REFRESH_MS) return;
    this.seenWrittenAt = now;
    const models = new Set(agents.flatMap((agent) => agent.models_available.map((m) => m.name)));
    if (models.size === 0) return;
    const fields = [...models].flatMap((model) => [model, String(now)]);
    this.deps.redis.hset(this.deps.ledger.keys.seenModels, ...fields).catch(() => undefined);
  }

  private async capacityMayReturn(model: string, agents: AgentHeartbeat[]): Promise<string | undefined> {
    if (agents.some((agent) => agent.state === 'draining' && agent.models_available.some((m) => m.name === model))) return 'its agents are draining';
    // The catalog is the fleet's list of models it keeps, served now or not (a pool scaled to
    // zero): a submit for one is demand, never an unknown model.
    const entry = await this.deps.catalog?.get(model).catch(() => undefined);
    if (entry !== undefined && entry.removing !== true) return 'it is in the fleet catalog';
    const seen = Number(await this.deps.redis.hget(this.deps.ledger.keys.seenModels, model));
    if (seen > 0 && Date.now() - seen < this.deps.config.capacityMemorySeconds * 1000) {
      return `an agent had it ${Math.round((Date.now() - seen) / 1000)} s ago`;
    }
    return undefined;
  }
}
