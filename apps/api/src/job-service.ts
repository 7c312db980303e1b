import { customAlphabet } from 'nanoid';
import type { RedisConnection } from '@switchyard/redis';
import type { JobState } from 'bullmq';
import type { Logger } from 'pino';
import { JobErrorCode, JobRequest, canonicalModelName, isTerminalStatus, type JobData, type JobRecord, type JobStatus, type RedisKeys } from '@switchyard/protocol';
import { JobLifecycle, JobRecords, QueueRegistry, cancelMessage, type AdmissionLedger, type StoredJob } from '@switchyard/redis';
import type { Admission } from './admission.js';
import { demandFingerprint } from './backlog.js';
import { checkCapabilities, ModelCapabilities } from './capabilities.js';
import { ApiError, quoteInput } from './errors.js';
import type { ApiMetrics } from './metrics.js';

// nanoid's URL-safe alphabet; BullMQ refuses ids that are all digits or contain ':'.
const newJobId = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-', 21);
export const JOB_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Why a job was cancelled (a metrics label): a client's DELETE, the disconnect grace, a
 * compat client going away, an operator's DELETE /admin/jobs/:id.
 */
export type CancelCause = 'client' | 'disconnect' | 'compat_disconnect' | 'operator';

export interface SubmitOutcome {
  accepted: { id: string; model: string; status: JobStatus; queue: { position: number; depth: number; eta_s?: number } };
  /** False when an idempotency key matched an earlier job. */
  created: boolean;
}

export interface JobServiceDeps {
  redis: RedisConnection;
  keys: RedisKeys;
  queues: QueueRegistry;
  lifecycle: JobLifecycle;
  records: JobRecords;
  admission: Admission;
  ledger: AdmissionLedger;
  metrics: ApiMetrics;
  logger: Logger;
  /** How long a model's shared capabilities are reused before they are read again (default 5 s). */
  capabilitiesMaxAgeMs?: number;
}

/** Submit, read and cancel jobs: the API's view of the queues. */
export class JobService {
  private readonly capabilities: ModelCapabilities;

  constructor(private readonly deps: JobServiceDeps) {
    this.capabilities = new ModelCapabilities(deps, deps.capabilitiesMaxAgeMs);
  }

  /**
   * Admits and enqueues a job (admission order: the fleet can serve the model, then queue
   * depth, tenant, global limits and the deadline, atomically), or answers the earlier job
   * of a repeated idempotency key.
   */
  async submit(request: JobRequest, tenant: string): Promise<SubmitOutcome> {
    const { deps } = this;
    const model = canonicalModelName(request.model);
    // A repeated idempotency key is not new work: answer it before any limit applies.
    if (request.idempotency_key !== undefined) {
      const existingId = await deps.redis.get(deps.ledger.keys.idempotency(tenant, request.idempotency_key));
      const existing = existingId ? await this.existing(existingId, tenant) : undefined;
      if (existing) return existing;
    }
    const { queueKey } = await deps.admission.place(model, request.digest, request.options, () => demandFingerprint(tenant, request));
    // After placement (an unknown model is a 404, not a 400), before anything is reserved.
    try {
      checkCapabilities(model, await this.capabilities.of(model), request);
    } catch (error) {
      deps.metrics.jobsRefused.inc({ model, reason: JobErrorCode.modelUnsupported });
      throw error;
    }

    const id = newJobId();
    const reserve = (overwriteIdempotency: boolean) =>
      deps.admission.reserve({
        jobId: id,
        queueKey,
        tenant,
        priority: request.priority,
        ...(request.deadline_ms !== undefined && { deadlineMs: request.deadline_ms }),
        detach: request.detach === true,
        ...(request.idempotency_key !== undefined && { idempotencyKey: request.idempotency_key }),
        overwriteIdempotency,
      });
    let reserved = await reserve(false);
    if (reserved.kind === 'duplicate') {
      // Raced with the same key: the first one wins, even while it is still being written.
      // A key whose job is gone (past retention, or its submit failed) is reused.
      const existing = await this.existingSoon(reserved.jobId, tenant);
      if (existing) return existing;
      reserved = await reserve(true);
      if (reserved.kind === 'duplicate') throw new ApiError('internal_error', 'idempotency key could not be claimed');
    }

    const now = Date.now();
    const data: JobData = {
      id,
      model,
      tenant,
      request,
      submitted_at: now,
      ...(request.deadline_ms !== undefined && { deadline_at: now + request.deadline_ms }),
    };
    const queueInfo = {
      position: reserved.position,
      depth: reserved.depth,
      ...(reserved.etaMs !== undefined && { eta_s: Math.round(reserved.etaMs / 100) / 10 }),
    };
    // The record with its `queued` event and BullMQ's add (one round trip on one Redis); undone
    // entirely (reservation included) if either fails.
    await deps.lifecycle.enqueue({ queue: deps.queues.get(queueKey), data, priority: reserved.priority, queueKey, queued: { type: 'queued', ...queueInfo } });
    // Wakes the agents; sent without waiting (the 202 does not need it).
    deps.redis.publish(deps.keys.workChannel, queueKey).catch(() => undefined);
    deps.metrics.jobsSubmitted.inc({ model, priority: request.priority });
    return { accepted: { id, model, status: 'queued', queue: queueInfo }, created: true };
  }

  /** The job of an idempotency key that another submit may still be writing (its reservation exists). */
  private async existingSoon(jobId: string, tenant: string): Promise<SubmitOutcome | undefined> {
    for (let attempt = 0; attempt < 40; attempt++) {
      const existing = await this.existing(jobId, tenant);
      if (existing) return existing;
      if (!(await this.deps.ledger.positions([jobId])).has(jobId)) return undefined;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return undefined;
  }

  private async existing(jobId: string, tenant: string): Promise<SubmitOutcome | undefined> {
    const record = await this.get(jobId, tenant).catch(() => undefined);
    if (!record) return undefined;
    return {
      accepted: {
        id: record.id,
        model: record.model,
        status: record.status,
        queue: {
          position: record.queue_position ?? 0,
          depth: 0,
          ...(record.queue_eta_s !== undefined && { eta_s: record.queue_eta_s }),
        },
      },
      created: false,
    };
  }

  /** Job id → its record, or a 404 (also for another tenant's job: no existence leak). */
  async locate(jobId: string, tenant: string): Promise<StoredJob> {
    if (!JOB_ID_PATTERN.test(jobId)) throw new ApiError('job_not_found', `no job with id ${quoteInput(jobId)}`);
    const entry = await this.deps.records.get(jobId);
    if (!entry || entry.tenant !== tenant) throw new ApiError('job_not_found', `no job with id ${quoteInput(jobId)}`);
    return entry;
  }

  /** Job id → the record of any tenant's job (the operator verbs), or a 404. */
  private async locateAny(jobId: string): Promise<StoredJob> {
    const valid = JOB_ID_PATTERN.test(jobId);
    const entry = valid ? await this.deps.records.get(jobId) : undefined;
    if (!entry) throw new ApiError('job_not_found', valid ? `no job with id ${JSON.stringify(jobId)}` : 'no job with that id (a job id is 1 to 64 of A-Z a-z 0-9 _ -)');
    return entry;
  }

  async get(jobId: string, tenant: string): Promise<JobRecord> {
    const record = recordOf(jobId, await this.locate(jobId, tenant));
    if (record.status !== 'queued') return record;
    // Where it stands: jobs ahead in the order agents take them, and the estimated start.
    const position = (await this.deps.ledger.positions([jobId])).get(jobId);
    if (position?.rank === undefined) return record;
    const stats = (await this.deps.admission.modelStats([position.model], new Map([[position.model, [position.rank]]]))).get(position.model);
    const eta = this.deps.admission.etaSeconds(stats, position.rank);
    return { ...record, queue_position: position.rank, ...(eta !== undefined && { queue_eta_s: eta }) };
  }

  /**
   * Cancels a job. A waiting job is removed from its queue at once; a running one is
   * aborted by the agent that owns it (told over pub/sub) and this waits up to
   * `waitMs` for its confirmation. `cause` only labels the metric.
   */
  async cancel(
    jobId: string,
    tenant: string,
    waitMs: number,
    waitForEnd: (jobId: string, ms: number) => Promise<boolean>,
    cause: CancelCause = 'client',
  ): Promise<{ record: JobRecord; settled: boolean }> {
    const entry = await this.locate(jobId, tenant);
    return this.cancelEntry(jobId, entry, waitMs, waitForEnd, cause);
  }

  /** Cancels any tenant's job (an operator's DELETE /admin/jobs/:id): `cancel` without the tenant check. */
  async cancelAsOperator(
    jobId: string,
    waitMs: number,
    waitForEnd: (jobId: string, ms: number) => Promise<boolean>,
  ): Promise<{ record: JobRecord; settled: boolean; tenant: string }> {
    const entry = await this.locateAny(jobId);
    return { ...(await this.cancelEntry(jobId, entry, waitMs, waitForEnd, 'operator')), tenant: entry.tenant };
  }

  /**
   * Submits a job's request again as a new job (an operator's POST /admin/jobs/:id/resubmit):
   * same tenant, a fresh id, through `submit`, so admission and the event log apply as to
   * any submit. The idempotency key is dropped: the resubmission is new work, and the key
   * would only answer the original. The request is read from the BullMQ job while it is
   * retained, else from the job index (kept there when the job was removed from its queue:
   * cancelled or expired while waiting). A job still queued or running is not refused: the
   * operator gets a second, independent copy.
   */
  async resubmit(jobId: string): Promise<SubmitOutcome & { tenant: string }> {
    const entry = await this.locateAny(jobId);
    const job = await this.deps.queues.get(entry.queue ?? entry.model).getJob(jobId);
    const stored: unknown = job ? job.data?.request : await this.deps.records.removedRequest(jobId);
    const parsed = stored === undefined ? undefined : JobRequest.safeParse(stored);
    if (!parsed?.success) {
      throw new ApiError(
        'job_finished',
        `job ${jobId} cannot be resubmitted: its request is no longer stored (it is kept while the job is retained; this one is past that, or its queue dropped it); submit the request again from the client`,
      );
    }
    const { idempotency_key: _dropped, ...request } = parsed.data;
    const outcome = await this.submit(request, entry.tenant);
    this.deps.logger.info({ jobId: outcome.accepted.id, resubmittedFrom: jobId, tenant: entry.tenant, model: entry.model }, 'job resubmitted by an operator');
    return { ...outcome, tenant: entry.tenant };
  }

  /** Cancels on the system's behalf (disconnect grace): no tenant check, no waiting; false when already over. */
  async cancelAbandoned(jobId: string, cause: CancelCause): Promise<boolean> {
    const entry = await this.deps.records.get(jobId);
    if (!entry) return false;
    try {
      await this.cancelEntry(jobId, entry, 0, async () => false, cause);
      return true;
    } catch (error) {
      if (error instanceof ApiError && error.code === 'job_finished') return false;
      throw error;
    }
  }

  private async cancelEntry(
    jobId: string,
    entry: StoredJob,
    waitMs: number,
    waitForEnd: (jobId: string, ms: number) => Promise<boolean>,
    cause: CancelCause,
  ): Promise<{ record: JobRecord; settled: boolean }> {
    const before = recordOf(jobId, entry);
    if (isTerminalStatus(before.status)) throw new ApiError('job_finished', `job ${jobId} already ended (${before.status}); nothing to cancel`);
    const why = cause === 'client' ? 'cancelled by client' : cause === 'operator' ? 'cancelled by an operator' : 'cancelled: the client went away';
    const queue = this.deps.queues.get(entry.queue ?? entry.model);
    // A waiting job is removed from its queue; remove() refuses a job an agent holds (its
    // lock), which falls through to the running path below. Any not-ended status may try: a
    // record can read `running` for a job BullMQ's stalled check put back. The request is read
    // before the removal takes it: the record keeps it for a resubmit.
    const request = (await queue.getJob(jobId).catch(() => undefined))?.data?.request;
    if ((await queue.remove(jobId)) === 1) {
      const dequeued = await this.deps.lifecycle.dequeue(jobId, { type: 'error', code: JobErrorCode.cancelled, message: `${why} while queued` }, request);
      this.deps.metrics.jobsCancelled.inc({ model: entry.model, state: 'queued', cause });
      return { record: await this.current(jobId, dequeued.taken ? undefined : entry), settled: true };
    }
    this.deps.metrics.jobsCancelled.inc({ model: entry.model, state: 'running', cause });
    // waitForEnd subscribes first and then also checks the log, so an agent that answers
    // faster than the subscription is confirmed is still heard.
    const ended = waitForEnd(jobId, waitMs);
    await this.deps.redis.publish(this.deps.keys.cancelChannel, cancelMessage({ job_id: jobId, model: entry.model, reason: why }));
    const settled = await ended;
    return { record: await this.current(jobId, entry), settled };
  }

  /** The job's record as it stands now (the one given when it is gone meanwhile). */
  private async current(jobId: string, fallback?: StoredJob): Promise<JobRecord> {
    const entry = (await this.deps.records.get(jobId)) ?? fallback;
    if (!entry) throw new ApiError('job_not_found', `job ${jobId} is past its retention`);
    return recordOf(jobId, entry);
  }

  /**
   * Expires a queued job whose deadline passed: removed from its queue without reaching a
   * GPU, an `error {code: deadline_exceeded}` event for its client. Otherwise the state that
   * kept it: an agent holds it already (it checks the deadline itself before starting), it
   * ended, or it is `unknown` (not enqueued yet: a submit in progress; or gone).
   */
  async expire(jobId: string, queueKey: string, deadlineAt: number): Promise<{ expired: true } | { expired: false; state: JobState | 'unknown' }> {
    const queue = this.deps.queues.get(queueKey);
    const state = await queue.getJobState(jobId);
    if (state === 'active' || state === 'completed' || state === 'failed' || state === 'unknown') return { expired: false, state };
    // Read before the removal takes it: the record keeps the request for a resubmit.
    const request = (await queue.getJob(jobId).catch(() => undefined))?.data?.request;
    // remove() refuses a job an agent locked meanwhile.
    if ((await queue.remove(jobId)) !== 1) return { expired: false, state: 'active' };
    const ended = await this.deps.lifecycle.dequeue(
      jobId,
      {
        type: 'error',
        code: JobErrorCode.deadlineExceeded,
        message: `deadline passed ${Math.max(0, Date.now() - deadlineAt)} ms ago while the job was queued; it never reached a GPU`,
      },
      request,
    );
    // Removed, but the record had ended already (a cancel that won): not this expiry's.
    if (!ended.taken) return { expired: false, state: 'completed' };
    return { expired: true };
  }

  /**
   * Jobs waiting (plain, prioritized or delayed) and running per model queue this process
   * knows; queues other replicas create are discovered every few seconds (server.ts), not on
   * every call.
   */
  async queueCounts(): Promise<Map<string, { waiting: number; active: number }>> {
    const result = new Map<string, { waiting: number; active: number }>();
    await Promise.all(
      [...this.deps.queues.opened()].map(async ([model, queue]) => {
        const counts = await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active');
        result.set(model, { waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0), active: counts.active ?? 0 });
      }),
    );
    return result;
  }
}

/**
 * A job's record as the API answers it, from the stored one: its state is the record's,
 * which the job's transitions write together with the events its stream shows.
 */
function recordOf(jobId: string, stored: StoredJob): JobRecord {
  const base = { id: jobId, model: stored.model, created_at: new Date(stored.created_at).toISOString() };
  // A status this version does not know (a newer writer's) reads as the job still waiting.
  const status = stored.status ?? 'queued';
  if (status === 'completed' && stored.result) {
    const { result } = stored;
    return {
      ...base,
      status,
      result: {
        text: result.text,
        finish_reason: result.finish_reason,
        ...(result.tool_calls !== undefined && result.tool_calls.length > 0 && { tool_calls: result.tool_calls }),
        ...(result.embeddings !== undefined && { embeddings: result.embeddings }),
      },
      usage: result.usage,
      timings: result.timings,
      agent: result.agent,
    };
  }
  return {
    ...base,
    status,
    ...(stored.agent !== undefined && (status === 'loading' || status === 'running') && { agent: stored.agent }),
    ...(stored.error && { error: stored.error }),
  };
}
