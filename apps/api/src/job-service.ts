import { customAlphabet } from 'nanoid';
import type { Redis } from 'ioredis';
import type { Job, JobState } from 'bullmq';
import type { Logger } from 'pino';
import {
  JobErrorCode,
  JobRequest,
  canonicalModelName,
  parseJobFailure,
  type JobData,
  type JobRecord,
  type JobResult,
  type JobStatus,
  type RedisKeys,
} from '@switchyard/protocol';
import { EventLog, JobIndex, QueueRegistry, cancelMessage, statusOfFailure, type AdmissionLedger, type JobIndexEntry } from '@switchyard/redis';
import type { Admission } from './admission.js';
import { answerFromEvents, type Answer } from './answer.js';
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
  redis: Redis;
  keys: RedisKeys;
  queues: QueueRegistry;
  events: EventLog;
  jobIndex: JobIndex;
  admission: Admission;
  ledger: AdmissionLedger;
  metrics: ApiMetrics;
  logger: Logger;
  jobRetentionSeconds: number;
}

/** Submit, read and cancel jobs: the API's view of the queues. */
export class JobService {
  constructor(private readonly deps: JobServiceDeps) {}

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
    const { queueKey } = await deps.admission.place(model, request.digest, request.options);

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
    const queue = deps.queues.get(queueKey);
    const retention = deps.jobRetentionSeconds;
    // The index and the job are written concurrently on the same connection (one round
    // trip); if the add fails the index entry and the reservation go, so nothing is half-created.
    const [indexed, added] = await Promise.allSettled([
      deps.jobIndex.put(id, {
        model,
        tenant,
        created_at: now,
        ...(queueKey !== model && { queue: queueKey }),
      }),
      queue.add('generate', data, {
        jobId: id,
        // Agents take the lowest priority number first; the admission script derived it from
        // the job's virtual start time (arrival + batch offset + fair-share steps).
        priority: reserved.priority,
        attempts: 2,
        backoff: { type: 'fixed', delay: 1_000 },
        removeOnComplete: { age: retention, count: 100_000 },
        removeOnFail: { age: retention, count: 100_000 },
      }),
    ]);
    if (added.status === 'rejected' || indexed.status === 'rejected') {
      await Promise.allSettled([deps.jobIndex.delete(id), queue.remove(id), deps.ledger.release(id, 'aborted')]);
      throw added.status === 'rejected' ? added.reason : (indexed as PromiseRejectedResult).reason;
    }
    const queueInfo = {
      position: reserved.position,
      depth: reserved.depth,
      ...(reserved.etaMs !== undefined && { eta_s: Math.round(reserved.etaMs / 100) / 10 }),
    };
    // The `queued` event, then the announcement that wakes the agents, both sent without
    // waiting (the 202 does not need them: a stream opened meanwhile subscribes before it
    // reads the log). Same connection, so Redis runs them in this order and an agent that
    // was woken finds `queued` already logged; `onlyIfEmpty` keeps it from ever landing
    // after an agent's `started` (an agent's periodic sweep can still win that race).
    deps.events
      .append(id, { type: 'queued', ...queueInfo }, { onlyIfEmpty: true })
      .catch((error) => deps.logger.warn({ err: error, jobId: id }, 'could not write the queued event'));
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

  /** Job id → index entry, or a 404 (also for another tenant's job: no existence leak). */
  async locate(jobId: string, tenant: string): Promise<JobIndexEntry> {
    if (!JOB_ID_PATTERN.test(jobId)) throw new ApiError('job_not_found', `no job with id ${quoteInput(jobId)}`);
    const entry = await this.deps.jobIndex.get(jobId);
    if (!entry || entry.tenant !== tenant) throw new ApiError('job_not_found', `no job with id ${quoteInput(jobId)}`);
    return entry;
  }

  /** Job id → index entry of any tenant (the operator verbs), or a 404. */
  private async locateAny(jobId: string): Promise<JobIndexEntry> {
    const valid = JOB_ID_PATTERN.test(jobId);
    const entry = valid ? await this.deps.jobIndex.get(jobId) : undefined;
    if (!entry) throw new ApiError('job_not_found', valid ? `no job with id ${JSON.stringify(jobId)}` : 'no job with that id (a job id is 1 to 64 of A-Z a-z 0-9 _ -)');
    return entry;
  }

  async get(jobId: string, tenant: string): Promise<JobRecord> {
    const entry = await this.locate(jobId, tenant);
    const queue = this.deps.queues.get(entry.queue ?? entry.model);
    const job = await queue.getJob(jobId);
    const record = await this.record(jobId, entry, job);
    if (record.status !== 'queued') return record;
    // Where it stands: jobs ahead in the order agents take them, and the estimated start.
    const position = (await this.deps.ledger.positions([jobId])).get(jobId);
    if (position?.rank === undefined) return record;
    const stats = (await this.deps.admission.modelStats([position.model], new Map([[position.model, [position.rank]]]))).get(position.model);
    const eta = this.deps.admission.etaSeconds(stats, position.rank);
    return { ...record, queue_position: position.rank, ...(eta !== undefined && { queue_eta_s: eta }) };
  }

  private async record(jobId: string, entry: JobIndexEntry, job: Job<JobData, JobResult> | undefined): Promise<JobRecord> {
    const base = { id: jobId, model: entry.model, created_at: new Date(entry.created_at).toISOString() };
    if (!job) {
      // Removed from the queue: either cancelled while waiting, or past retention.
      const last = await this.deps.events.last(jobId);
      if (last?.type === 'error') return endedInError(base, last);
      if (entry.status !== undefined) return { ...base, status: entry.status };
      throw new ApiError('job_not_found', `job ${jobId} is past its retention`);
    }
    const state = await job.getState();
    if (state === 'completed' && job.returnvalue) return completed(base, job.returnvalue);
    if (state === 'failed') {
      // The job's terminal event is what its stream told the client; BullMQ's failedReason
      // can disagree with it (a cancellation heard while the backend request was failing is
      // logged `cancelled` but may reach BullMQ as the backend's error). One answer: the log's.
      const last = await this.deps.events.last(jobId);
      return endedInError(base, last?.type === 'error' ? last : parseJobFailure(job.failedReason));
    }
    if (state === 'active') {
      // The agent writes a job's terminal event before it moves the job to completed or
      // failed, so an active job whose log already ends is over (a client that read `done`
      // on its stream and asks at once, or a cancellation confirmed a moment ago): report it
      // as its stream did, the answer read from the log. Otherwise it is running once the
      // agent wrote `started` (within the first few events: after `queued`, and after
      // `restarted` on a retry); until then the model is loading.
      // One flight for the common case; the whole log is read only in the moment after `done`.
      const [last, early] = await Promise.all([this.deps.events.last(jobId), this.deps.events.readAfter(jobId, 0, 4)]);
      if (last?.type === 'error') return endedInError(base, last);
      const answer = last?.type === 'done' ? answerFromEvents(await this.deps.events.readAfter(jobId, 0)) : undefined;
      if (answer) return completed(base, { ...answer.done, text: answer.text, ...(answer.agent !== undefined && { agent: answer.agent }) });
      const started = early.findLast((event) => event.type === 'started');
      return started?.type === 'started' ? { ...base, status: 'running', agent: started.agent } : { ...base, status: 'loading' };
    }
    return { ...base, status: 'queued' };
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
    const stored: unknown = job ? job.data?.request : await this.deps.jobIndex.removedRequest(jobId);
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
    const entry = await this.deps.jobIndex.get(jobId);
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
    entry: JobIndexEntry,
    waitMs: number,
    waitForEnd: (jobId: string, ms: number) => Promise<boolean>,
    cause: CancelCause,
  ): Promise<{ record: JobRecord; settled: boolean }> {
    const queue = this.deps.queues.get(entry.queue ?? entry.model);
    const job = await queue.getJob(jobId);
    if (!job) {
      const record = await this.record(jobId, entry, undefined);
      throw new ApiError('job_finished', `job ${jobId} already ended (${record.status})`);
    }
    const state = await job.getState();
    if (state === 'completed' || state === 'failed') {
      const record = await this.record(jobId, entry, job);
      throw new ApiError('job_finished', `job ${jobId} already ended (${record.status}); nothing to cancel`);
    }
    const why = cause === 'client' ? 'cancelled by client' : cause === 'operator' ? 'cancelled by an operator' : 'cancelled: the client went away';
    if (state !== 'active') {
      // remove() refuses a locked job, so a job an agent claimed meanwhile falls through
      // to the running path below.
      const removed = await job.remove().then(
        () => true,
        () => false,
      );
      if (removed) {
        // BullMQ's copy of the request went with the job; the index keeps it for a resubmit.
        await this.deps.jobIndex.markCancelled(jobId, job.data?.request);
        // The error event also releases the job's admission reservation.
        await this.deps.events.append(jobId, { type: 'error', code: JobErrorCode.cancelled, message: `${why} while queued` });
        this.deps.metrics.jobsCancelled.inc({ model: entry.model, state: 'queued', cause });
        return { record: { id: jobId, model: entry.model, created_at: new Date(entry.created_at).toISOString(), status: 'cancelled' }, settled: true };
      }
    }
    this.deps.metrics.jobsCancelled.inc({ model: entry.model, state: 'running', cause });
    // waitForEnd subscribes first and then also checks the log, so an agent that answers
    // faster than the subscription is confirmed is still heard.
    const ended = waitForEnd(jobId, waitMs);
    await this.deps.redis.publish(this.deps.keys.cancelChannel, cancelMessage({ job_id: jobId, model: entry.model, reason: why }));
    const settled = await ended;
    const fresh = await queue.getJob(jobId);
    return { record: await this.record(jobId, entry, fresh), settled };
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
    // Read before the removal takes it: the index keeps the request for a resubmit.
    const request = (await queue.getJob(jobId).catch(() => undefined))?.data?.request;
    // remove() refuses a job an agent locked meanwhile.
    if ((await queue.remove(jobId)) !== 1) return { expired: false, state: 'active' };
    await this.deps.jobIndex.markExpired(jobId, request).catch(() => undefined);
    await this.deps.events.append(jobId, {
      type: 'error',
      code: JobErrorCode.deadlineExceeded,
      message: `deadline passed ${Math.max(0, Date.now() - deadlineAt)} ms ago while the job was queued; it never reached a GPU`,
    });
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

type RecordBase = Pick<JobRecord, 'id' | 'model' | 'created_at'>;

function completed(base: RecordBase, result: Pick<JobResult, 'text' | 'finish_reason' | 'usage' | 'timings'> & Pick<Answer, 'agent'>): JobRecord {
  return {
    ...base,
    status: 'completed',
    result: { text: result.text, finish_reason: result.finish_reason },
    usage: result.usage,
    timings: result.timings,
    ...(result.agent !== undefined && { agent: result.agent }),
  };
}

function endedInError(base: RecordBase, event: { code: string; message: string }): JobRecord {
  return { ...base, status: statusOfFailure(event.code), error: { code: event.code, message: event.message } };
}
