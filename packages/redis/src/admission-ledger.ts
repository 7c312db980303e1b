import type { RedisConnection } from './connection.js';
import type { AdmissionKeys, RedisKeys } from '@switchyard/protocol';
import { LIMIT_NAMES, limitField, parseReservation, parseWaitSample, scope, statusOfFailure, type RefusalCode, type WaitSample } from './ledger-layout.js';
import { defineScripts } from './scripts.js';

export type { RefusalCode, WaitSample } from './ledger-layout.js';

/**
 * The admission ledger: what is in flight, per tenant, per model and fleet-wide, and how
 * fast each model drains, kept in Redis so that every API replica admits against the same
 * numbers.
 *
 * Admission is one Lua script (lua/admit-13.lua): it reads the limits, checks queue depth,
 * tenant in-flight, tenant-per-model in-flight and the global limit, estimates the wait for
 * a deadline, and reserves — all in one round trip and atomically, so several replicas
 * admitting at once cannot overshoot a limit. Every key carries the `{adm}` hash tag (one
 * slot under Redis Cluster) and is named here, from `redisKeys().admission`, and passed in
 * KEYS — except the per-model and per-tenant sets of a reservation found by job id, whose
 * names only the stored reservation knows; those scripts get the key prefixes instead.
 *
 * Reservations end through the event log: an agent's `started` event moves a job from
 * queued to running and its `done`/`error` event releases it (see `EventLog.append`), so
 * the API needs no listener per job. A job that ends without a terminal event (an agent
 * died twice, an API died between reserve and enqueue) is released by the periodic
 * reconciliation in the API.
 */

/** Limits for one admission. `*Override` values come from the API keys file for this tenant. */
export interface AdmissionLimits {
  queueDepth: number;
  tenantInFlight: number;
  tenantInFlightOverride?: number;
  tenantModelInFlight: number;
  tenantModelInFlightOverride?: number;
  globalInFlight: number;
}

export interface AdmissionTuning {
  /** Sliding window of the drain rate. */
  drainWindowMs: number;
  /** At most this many newest completions make up the rate. */
  rateSamples: number;
  /** Batch work ranks as if it had arrived this much later. */
  batchOffsetMs: number;
  /** Each job the tenant already has in flight on the model pushes a new one back this much. */
  fairStepMs: number;
  /** Longest Retry-After handed out. */
  retryCapMs: number;
  /** Retry-After when a scope has no measured drain rate yet. */
  retryFallbackMs: number;
  /** A model's priority origin is moved forward once its queue is empty and the origin is older than this. */
  epochMaxAgeMs: number;
}

export interface AdmitRequest {
  jobId: string;
  /** Queue key: model name, or `<model>@<digest>` for a pinned queue. */
  model: string;
  tenant: string;
  priority: 'interactive' | 'batch';
  deadlineMs?: number;
  detach: boolean;
  /** Expected load time when no copy of the model is warm; 0 when one is. */
  loadMs: number;
  /** GPU slots that serve this model (for "starts at once" in the estimate). */
  capacity: number;
  idempotencyKey?: string;
  idempotencyTtlS: number;
  /** Replace an idempotency key whose job is gone (past retention). */
  overwriteIdempotency?: boolean;
  limits: AdmissionLimits;
  tuning: AdmissionTuning;
  now?: number;
}

export type AdmitResult =
  | { kind: 'duplicate'; jobId: string }
  | { kind: 'refused'; code: RefusalCode; retryAfterMs: number; depth: number; limit: number; current: number }
  | { kind: 'admitted'; priority: number; position: number; depth: number; etaMs?: number };

export type ReleaseKind = 'done' | 'error' | 'reconciled' | 'aborted';

export interface ModelLedgerStats {
  /** Jobs admitted and not yet started (includes jobs an agent is still loading for). */
  depth: number;
  /** Submission time of the longest-waiting job, if any waits. */
  oldestSubmittedAt?: number;
  inFlight: number;
  /** Completions per second over the window; 0 when none was measured. */
  drainPerS: number;
  /** Queue position → estimated wait (ms) before a job there starts, for the positions asked; absent without a drain rate. */
  waitMs?: Map<number, number>;
}

export interface JobPosition {
  state: 'q' | 'r';
  model: string;
  tenant: string;
  detach: boolean;
  /** Jobs ahead of it in its model's queue; undefined once started. */
  rank?: number;
}

/** Where a job waits in its model's queue, for the wait estimate the stats answer with. */
export interface EstimateRequest {
  /** GPU slots that serve the model. */
  capacity: number;
  /** Expected load time (ms); 0 when a copy is warm. */
  loadMs: number;
  /** Queue positions (jobs ahead) to estimate. */
  positions: number[];
}

/** How a reservation ended, as counted in the outcomes hash. */
function outcomeOf(kind: ReleaseKind, code: string): string {
  if (kind === 'done') return 'completed';
  if (kind === 'error') return statusOfFailure(code);
  return kind;
}

export class AdmissionLedger {
  readonly keys: AdmissionKeys;
  /** Prefixes of the keys named by a reservation's model or tenant (see the class comment). */
  private readonly prefixes: { waitPrefix: string; sincePrefix: string; drainModelPrefix: string; drainTenantPrefix: string };

  constructor(
    private readonly redis: RedisConnection,
    keys: RedisKeys,
  ) {
    this.keys = keys.admission;
    defineScripts(redis);
    const a = this.keys;
    this.prefixes = {
      waitPrefix: prefixOf((model) => a.waiting(model)),
      sincePrefix: prefixOf((model) => a.since(model)),
      drainModelPrefix: prefixOf((model) => a.drain(scope.model(model))),
      drainTenantPrefix: prefixOf((tenant) => a.drain(scope.tenant(tenant))),
    };
  }

  /** Checks every limit and reserves, atomically; or names the limit that refused and when to retry. */
  async admit(request: AdmitRequest): Promise<AdmitResult> {
    const { limits, tuning, model, tenant } = request;
    const a = this.keys;
    const options = {
      now: request.now ?? Date.now(),
      id: request.jobId,
      model,
      tenant,
      class: request.priority,
      ...(request.deadlineMs !== undefined && { deadline: request.deadlineMs }),
      detach: request.detach ? '1' : '0',
      load: Math.max(0, Math.round(request.loadMs)),
      capacity: Math.max(0, request.capacity),
      limits: {
        depth: { field: limitField(LIMIT_NAMES.queueDepth, model), default: LIMIT_NAMES.queueDepth, env: limits.queueDepth },
        tenant: {
          field: limitField(LIMIT_NAMES.tenantInFlight, tenant),
          ...(limits.tenantInFlightOverride !== undefined && { file: limits.tenantInFlightOverride }),
          default: LIMIT_NAMES.tenantInFlight,
          env: limits.tenantInFlight,
        },
        tenantModel: {
          field: limitField(LIMIT_NAMES.tenantModelInFlight, tenant),
          ...(limits.tenantModelInFlightOverride !== undefined && { file: limits.tenantModelInFlightOverride }),
          default: LIMIT_NAMES.tenantModelInFlight,
          env: limits.tenantModelInFlight,
        },
        global: { default: LIMIT_NAMES.globalInFlight, env: limits.globalInFlight },
      },
      window: tuning.drainWindowMs,
      k: tuning.rateSamples,
      batchOffset: tuning.batchOffsetMs,
      fairStep: tuning.fairStepMs,
      retryCap: tuning.retryCapMs,
      retryFallback: tuning.retryFallbackMs,
      epochMaxAge: tuning.epochMaxAgeMs,
      idem: request.idempotencyKey !== undefined,
      overwrite: request.overwriteIdempotency === true,
      idemTtl: request.idempotencyTtlS,
    };
    const reply = await this.redis.sy_admit_v2(
      a.jobs,
      a.inflight,
      a.limits,
      a.retrySlots,
      a.waiting(model),
      a.since(model),
      a.drain(scope.model(model)),
      a.drain(scope.tenant(tenant)),
      a.drain('g'),
      a.lastStarts,
      a.priorityEpochs,
      a.deadlines,
      // Without an idempotency key the script leaves this alone; any key of the slot will do.
      request.idempotencyKey === undefined ? a.jobs : a.idempotency(tenant, request.idempotencyKey),
      JSON.stringify(options),
    );
    if (reply[0] === 'dup') return { kind: 'duplicate', jobId: reply[1] };
    if (reply[0] === 'refused') {
      return {
        kind: 'refused',
        code: reply[1],
        retryAfterMs: Number(reply[2]),
        depth: Number(reply[3]),
        limit: Number(reply[4]),
        current: Number(reply[5]),
      };
    }
    const eta = Number(reply[4]);
    return {
      kind: 'admitted',
      priority: Number(reply[1]),
      position: Number(reply[2]),
      depth: Number(reply[3]),
      ...(eta >= 0 && { etaMs: eta }),
    };
  }

  /** Queued → running (the agent's `started`, or reconciliation seeing the job active). */
  async started(jobId: string, options: { cold?: boolean; loadMs?: number; sample?: boolean; now?: number } = {}): Promise<boolean> {
    const a = this.keys;
    const moved = await this.redis.sy_start_reservation_v2(
      a.jobs,
      a.deadlines,
      a.waitSamples,
      a.loadMs,
      JSON.stringify({
        id: jobId,
        now: options.now ?? Date.now(),
        cold: options.cold === true,
        load: Math.round(options.loadMs ?? 0),
        sample: options.sample !== false,
        waitPrefix: this.prefixes.waitPrefix,
        sincePrefix: this.prefixes.sincePrefix,
      }),
    );
    return moved === 1;
  }

  /** Ends a reservation; false when there was none (already released, or never admitted). */
  async release(jobId: string, kind: ReleaseKind, code = '', now = Date.now()): Promise<boolean> {
    const a = this.keys;
    const released = await this.redis.sy_release_reservation_v2(
      a.jobs,
      a.deadlines,
      a.watched,
      a.inflight,
      a.outcomes,
      a.drain('g'),
      JSON.stringify({ id: jobId, now, kind, outcome: outcomeOf(kind, code), ...this.prefixes }),
    );
    return released === 1;
  }

  /** Rebuilds the in-flight counters from the reservations; returns the drift it corrected. */
  async recompute(models: string[]): Promise<number> {
    const a = this.keys;
    const keys = [a.jobs, a.inflight, ...models.flatMap((model) => [a.waiting(model), a.since(model)])];
    return this.redis.sy_recompute_inflight_v1(keys.length, ...keys);
  }

  /**
   * Per model: depth, oldest wait, in flight, drain rate; with `estimates`, also the wait
   * estimate (the admission script's own rule) for the positions asked, in `waitMs`.
   */
  async stats(
    models: string[],
    drainWindowMs: number,
    rateSamples: number,
    now = Date.now(),
    estimates?: ReadonlyMap<string, EstimateRequest>,
  ): Promise<Map<string, ModelLedgerStats>> {
    const result = new Map<string, ModelLedgerStats>();
    if (models.length === 0) return result;
    const a = this.keys;
    const keys = [a.inflight, ...models.flatMap((model) => [a.waiting(model), a.since(model), a.drain(scope.model(model))])];
    const options = {
      now,
      window: drainWindowMs,
      k: rateSamples,
      models: models.map((model) => {
        const wanted = estimates?.get(model);
        return wanted ? { model, capacity: Math.max(0, wanted.capacity), load: wanted.loadMs, positions: wanted.positions } : { model };
      }),
    };
    const rows = await this.redis.sy_ledger_stats_v1(keys.length, ...keys, JSON.stringify(options));
    models.forEach((model, index) => {
      const row = rows[index];
      if (!row) return;
      const oldest = Number(row[1]);
      const positions = estimates?.get(model)?.positions;
      const waitMs = new Map<number, number>();
      positions?.forEach((position, i) => {
        const ms = Number(row[4]?.[i]);
        if (ms >= 0) waitMs.set(position, ms);
      });
      result.set(model, {
        depth: Number(row[0]),
        ...(oldest >= 0 && { oldestSubmittedAt: oldest }),
        inFlight: Number(row[2]),
        drainPerS: Number(row[3]) / 1000,
        ...(positions && { waitMs }),
      });
    });
    return result;
  }

  /** Where each job stands (undefined for jobs without a reservation). */
  async positions(jobIds: string[]): Promise<Map<string, JobPosition>> {
    const result = new Map<string, JobPosition>();
    if (jobIds.length === 0) return result;
    const rows = await this.redis.sy_reservation_positions_v1(this.keys.jobs, this.prefixes.waitPrefix, ...jobIds);
    jobIds.forEach((jobId, index) => {
      const row = rows[index];
      if (!row || row[0] === '' || row[1] === undefined || row[2] === undefined) return;
      const rank = Number(row[4] ?? -1);
      result.set(jobId, {
        state: row[0] === 'q' ? 'q' : 'r',
        model: row[1],
        tenant: row[2],
        detach: row[3] === '1',
        ...(rank >= 0 && { rank }),
      });
    });
    return result;
  }

  /** Marks a job's native stream as open now; ignored once the job has ended. */
  async watch(jobId: string, now = Date.now()): Promise<void> {
    await this.redis.sy_watch_stream_v1(this.keys.jobs, this.keys.watched, jobId, String(now));
  }

  /** Every reservation: job id → state, model, tenant, submission time. */
  async reservations(): Promise<Map<string, { state: 'q' | 'r'; model: string; tenant: string; submittedAt: number }>> {
    const all = await this.redis.hgetall(this.keys.jobs);
    const result = new Map<string, { state: 'q' | 'r'; model: string; tenant: string; submittedAt: number }>();
    for (const [jobId, entry] of Object.entries(all)) {
      const reservation = parseReservation(entry);
      if (reservation) result.set(jobId, reservation);
    }
    return result;
  }

  /** Takes up to `count` of the oldest wait samples (start script's), in one MULTI. */
  async takeWaitSamples(count: number): Promise<WaitSample[]> {
    const key = this.keys.waitSamples;
    const [[, raw]] = (await this.redis
      .multi()
      .lrange(key, 0, count - 1)
      .ltrim(key, count, -1)
      .exec()) as [[Error | null, string[]]];
    return (raw ?? []).flatMap((sample) => parseWaitSample(sample) ?? []);
  }

  /** In-flight counters as stored (`g`, `t:<tenant>`, `tm:<tenant>|<model>`, `m:<model>`). */
  async inFlight(): Promise<Record<string, number>> {
    const raw = await this.redis.hgetall(this.keys.inflight);
    return Object.fromEntries(Object.entries(raw).map(([field, value]) => [field, Number(value)]));
  }
}

/**
 * The part of a key name before its variable part, for the scripts that name keys from a
 * stored reservation. Checked, so a change of naming in keys.ts that is not a plain suffix
 * fails at start-up instead of writing to keys nobody reads.
 */
function prefixOf(name: (part: string) => string): string {
  const prefix = name('');
  if (name('x|y') !== `${prefix}x|y`) throw new Error(`key ${name('x|y')} is not its prefix ${prefix} and a suffix`);
  return prefix;
}
