import { customAlphabet } from 'nanoid';
import type { Redis } from 'ioredis';
import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import {
  JobErrorCode,
  canonicalModelName,
  parseJobFailure,
  type JobData,
  type JobRecord,
  type JobRequest,
  type JobResult,
  type JobStatus,
  type RedisKeys,
} from '@switchyard/protocol';
import { EventLog, JobIndex, QueueRegistry, cancelMessage, type JobIndexEntry, type ModelQueue } from '@switchyard/redis';
import { ApiError } from './errors.js';
import type { FleetView } from './fleet-view.js';
import { placeModel, type ModelPlacement } from './model-admission.js';
import type { ApiMetrics } from './metrics.js';

// nanoid's URL-safe alphabet; BullMQ refuses ids that are all digits or contain ':'.
const newJobId = customAlphabet('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-', 21);
export const JOB_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

const WAITING_STATES = ['waiting', 'prioritized', 'delayed', 'waiting-children'] as const;

export interface SubmitOutcome {
  accepted: { id: string; model: string; status: JobStatus; queue: { position: number; depth: number } };
  /** False when an idempotency key matched an earlier job. */
  created: boolean;
}

export interface JobServiceDeps {
  redis: Redis;
  keys: RedisKeys;
  queues: QueueRegistry;
  events: EventLog;
  jobIndex: JobIndex;
  fleet: FleetView;
  metrics: ApiMetrics;
  logger: Logger;
  jobRetentionSeconds: number;
  idempotencyWindowSeconds: number;
}

/** Submit, read and cancel jobs: the API's view of the queues. */
export class JobService {
  constructor(private readonly deps: JobServiceDeps) {}

  async submit(request: JobRequest, tenant: string): Promise<SubmitOutcome> {
    const { deps } = this;
    const model = canonicalModelName(request.model);
    const { queueKey } = await this.admit(model, request.digest);

    const id = newJobId();
    if (request.idempotency_key !== undefined) {
      const key = `${deps.keys.job('idem')}:${tenant}:${request.idempotency_key}`;
      const claimed = await deps.redis.set(key, id, 'EX', deps.idempotencyWindowSeconds, 'NX');
      if (claimed === null) {
        const existingId = await deps.redis.get(key);
        const existing = existingId ? await this.get(existingId, tenant).catch(() => undefined) : undefined;
        if (existing) {
          return {
            accepted: { id: existing.id, model: existing.model, status: existing.status, queue: { position: existing.queue_position ?? 0, depth: 0 } },
            created: false,
          };
        }
        await deps.redis.set(key, id, 'EX', deps.idempotencyWindowSeconds);
      }
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
    // trip); if the add fails the index entry is removed, so nothing is half-created.
    const [indexed, added] = await Promise.allSettled([
      deps.jobIndex.put(id, { model, tenant, created_at: now, ...(queueKey !== model && { queue: queueKey }) }),
      queue.add('generate', data, {
        jobId: id,
        // Unprioritised jobs run before prioritised ones in BullMQ, so interactive work
        // needs no priority at all and batch work gets one.
        ...(request.priority === 'batch' && { priority: 1 }),
        attempts: 2,
        backoff: { type: 'fixed', delay: 1_000 },
        removeOnComplete: { age: retention, count: 100_000 },
        removeOnFail: { age: retention, count: 100_000 },
      }),
    ]);
    if (added.status === 'rejected' || indexed.status === 'rejected') {
      await Promise.allSettled([deps.jobIndex.delete(id), queue.remove(id)]);
      throw added.status === 'rejected' ? added.reason : (indexed as PromiseRejectedResult).reason;
    }
    // Announce the work; agents serving the model wake up and claim it.
    deps.redis.publish(deps.keys.workChannel, queueKey).catch(() => undefined);
    const depth = await this.waitingCount(queue);
    const position = Math.max(0, depth - 1);
    // Written only if no agent has started the job yet, so `queued` never follows `started`.
    await deps.events.append(id, { type: 'queued', position, depth }, { onlyIfEmpty: true });
    deps.metrics.jobsSubmitted.inc({ model, priority: request.priority });
    return { accepted: { id, model, status: 'queued', queue: { position, depth } }, created: true };
  }

  /** Refuses work no live agent can serve instead of letting it wait forever; says which queue it goes to. */
  private async admit(model: string, digest?: string): Promise<ModelPlacement> {
    const agents = await this.deps.fleet.agents();
    const live = agents.filter((agent) => agent.state === 'ready');
    if (live.length === 0) {
      this.deps.metrics.jobsRefused.inc({ model, reason: 'no_capacity' });
      throw new ApiError('no_capacity', 'no agent is live; the fleet cannot take work right now', 5);
    }
    try {
      return placeModel(live, model, digest);
    } catch (error) {
      if (error instanceof ApiError) {
        this.deps.metrics.jobsRefused.inc({ model: error.code === 'model_not_found' ? 'unknown' : model, reason: error.code });
      }
      throw error;
    }
  }

  private async waitingCount(queue: ModelQueue): Promise<number> {
    const counts = await queue.getJobCounts(...WAITING_STATES);
    return WAITING_STATES.reduce((sum, state) => sum + (counts[state] ?? 0), 0);
  }

  /** Job id → index entry, or a 404 (also for another tenant's job: no existence leak). */
  async locate(jobId: string, tenant: string): Promise<JobIndexEntry> {
    if (!JOB_ID_PATTERN.test(jobId)) throw new ApiError('job_not_found', `no job with id ${JSON.stringify(jobId)}`);
    const entry = await this.deps.jobIndex.get(jobId);
    if (!entry || entry.tenant !== tenant) throw new ApiError('job_not_found', `no job with id ${JSON.stringify(jobId)}`);
    return entry;
  }

  async get(jobId: string, tenant: string): Promise<JobRecord> {
    const entry = await this.locate(jobId, tenant);
    const queue = this.deps.queues.get(entry.queue ?? entry.model);
    const job = await queue.getJob(jobId);
    return this.record(jobId, entry, job);
  }

  private async record(jobId: string, entry: JobIndexEntry, job: Job<JobData, JobResult> | undefined): Promise<JobRecord> {
    const base = { id: jobId, model: entry.model, created_at: new Date(entry.created_at).toISOString() };
    if (!job) {
      // Removed from the queue: either cancelled while waiting, or past retention.
      const last = await this.deps.events.last(jobId);
      if (last?.type === 'error') {
        return { ...base, status: last.code === JobErrorCode.cancelled ? 'cancelled' : 'failed', error: { code: last.code, message: last.message } };
      }
      if (entry.status === 'cancelled') return { ...base, status: 'cancelled' };
      throw new ApiError('job_not_found', `job ${jobId} is past its retention`);
    }
    const state = await job.getState();
    if (state === 'completed' && job.returnvalue) {
      const result = job.returnvalue;
      return {
        ...base,
        status: 'completed',
        result: { text: result.text, finish_reason: result.finish_reason },
        usage: result.usage,
        timings: result.timings,
        agent: result.agent,
      };
    }
    if (state === 'failed') {
      const failure = parseJobFailure(job.failedReason);
      const status: JobStatus =
        failure.code === JobErrorCode.cancelled ? 'cancelled' : failure.code === JobErrorCode.deadlineExceeded ? 'expired' : 'failed';
      return { ...base, status, error: failure };
    }
    if (state === 'active') {
      const progress = job.progress as { phase?: string; agent?: string } | undefined;
      const running = typeof progress === 'object' && progress?.phase === 'running';
      return { ...base, status: running ? 'running' : 'loading', ...(progress?.agent && { agent: progress.agent }) };
    }
    return { ...base, status: 'queued' };
  }

  /**
   * Cancels a job. A waiting job is removed from its queue at once; a running one is
   * aborted by the agent that owns it (told over pub/sub) and this waits up to
   * `waitMs` for its confirmation.
   */
  async cancel(jobId: string, tenant: string, waitMs: number, waitForEnd: (jobId: string, ms: number) => Promise<boolean>): Promise<{ record: JobRecord; settled: boolean }> {
    const entry = await this.locate(jobId, tenant);
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
    if (state !== 'active') {
      // remove() refuses a locked job, so a job an agent claimed meanwhile falls through
      // to the running path below.
      const removed = await job.remove().then(
        () => true,
        () => false,
      );
      if (removed) {
        await this.deps.jobIndex.markCancelled(jobId);
        await this.deps.events.append(jobId, { type: 'error', code: JobErrorCode.cancelled, message: 'cancelled by client while queued' });
        this.deps.metrics.jobsCancelled.inc({ model: entry.model, state: 'queued' });
        return { record: { id: jobId, model: entry.model, created_at: new Date(entry.created_at).toISOString(), status: 'cancelled' }, settled: true };
      }
    }
    this.deps.metrics.jobsCancelled.inc({ model: entry.model, state: 'running' });
    const ended = waitForEnd(jobId, waitMs);
    await this.deps.redis.publish(
      this.deps.keys.cancelChannel,
      cancelMessage({ job_id: jobId, model: entry.model, reason: 'cancelled by client' }),
    );
    const settled = await ended;
    const fresh = await queue.getJob(jobId);
    return { record: await this.record(jobId, entry, fresh), settled };
  }

  /** Waiting/active/... counts per model queue this process knows. */
  async queueCounts(): Promise<Map<string, Record<string, number>>> {
    await this.deps.queues.discover();
    const result = new Map<string, Record<string, number>>();
    await Promise.all(
      [...this.deps.queues.opened()].map(async ([model, queue]) => {
        result.set(model, await queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'));
      }),
    );
    return result;
  }
}
