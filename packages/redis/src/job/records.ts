import type { RedisConnection } from '../connection.js';
import { ErrorInfo, JobResult, jobStatus, type JobStatus, type RedisKeys } from '@switchyard/protocol';

/**
 * A job's record as stored (hash `keys.job(id)`): how the API finds the job's queue (job ids
 * are plain nanoids, the public contract) and the state its transitions leave it in. Only
 * the transition scripts write it (see `JobLifecycle`); it lives for the job's retention.
 */
export interface StoredJob {
  model: string;
  tenant: string;
  created_at: number;
  /** Queue key when it differs from the model (a digest-pinned job). */
  queue?: string;
  /** Undefined when the stored value is not a status this version knows. */
  status?: JobStatus;
  /** The agent that holds or held it (set by its claim). */
  agent?: string;
  /** The attempt that holds or held it: BullMQ's lock token of that run (set by its claim). */
  attempt?: string;
  /** How a failed, cancelled or expired job ended. */
  error?: ErrorInfo;
  /** What a completed job answered. */
  result?: JobResult;
}

/** Record fields read for a job's state; `request` (kept for a resubmit) is read only when asked for. */
const FIELDS = ['model', 'tenant', 'created_at', 'queue', 'status', 'agent', 'attempt', 'error', 'result'] as const;

export class JobRecords {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: RedisKeys,
  ) {}

  /** The record, or undefined when there is none (never submitted, or past retention). */
  async get(jobId: string): Promise<StoredJob | undefined> {
    const [model, tenant, createdAt, queue, status, agent, attempt, error, result] = await this.redis.hmget(this.keys.job(jobId), ...FIELDS);
    if (!model || !tenant) return undefined;
    const parsedError = error ? ErrorInfo.safeParse(parseJson(error)) : undefined;
    const parsedResult = result ? JobResult.safeParse(parseJson(result)) : undefined;
    const known = jobStatus(status);
    return {
      model,
      tenant,
      created_at: Number(createdAt ?? 0),
      ...(queue && { queue }),
      ...(known !== undefined && { status: known }),
      ...(agent && { agent }),
      ...(attempt && { attempt }),
      ...(parsedError?.success && { error: parsedError.data }),
      ...(parsedResult?.success && { result: parsedResult.data }),
    };
  }

  /** Each job's status alone (undefined: no record, or a status this version does not know), in one flight. */
  async statuses(jobIds: string[]): Promise<Array<JobStatus | undefined>> {
    // Concurrent commands on one connection go out back to back: one flight, not one each.
    return Promise.all(jobIds.map(async (jobId) => jobStatus(await this.redis.hget(this.keys.job(jobId), 'status'))));
  }

  /** The request a dequeued job kept (BullMQ's copy went with the job), as stored: the caller validates it. */
  async removedRequest(jobId: string): Promise<unknown> {
    const raw = await this.redis.hget(this.keys.job(jobId), 'request');
    return raw === null ? undefined : parseJson(raw);
  }
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}
