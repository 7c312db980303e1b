import type { Redis } from 'ioredis';
import type { JobRequest, RedisKeys } from '@switchyard/protocol';
import { defineScripts } from './scripts.js';

export interface JobIndexEntry {
  model: string;
  tenant: string;
  created_at: number;
  /** Queue key when it differs from the model (a digest-pinned job). */
  queue?: string;
  /** Set when the job ended without a BullMQ record to show it (cancelled or expired while queued). */
  status?: 'cancelled' | 'expired';
}

/**
 * Job id → model and tenant. Job ids are plain nanoids (the public contract), so the API
 * needs this to find a job's queue. Written together with the enqueue; expires with the
 * job's retention.
 */
export class JobIndex {
  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly ttlSeconds = 7 * 24 * 3600,
  ) {
    defineScripts(redis);
  }

  async put(jobId: string, entry: JobIndexEntry): Promise<void> {
    const fields: string[] = ['model', entry.model, 'tenant', entry.tenant, 'created_at', String(entry.created_at)];
    if (entry.queue !== undefined) fields.push('queue', entry.queue);
    // One script call instead of MULTI/HSET/EXPIRE/EXEC (see lua/put-job-index-1.lua).
    await this.redis.sy_put_job_index_v1(this.keys.job(jobId), String(this.ttlSeconds), ...fields);
  }

  async get(jobId: string): Promise<JobIndexEntry | undefined> {
    // Named fields, not HGETALL: an entry may also hold a job's whole request (see markCancelled).
    const [model, tenant, createdAt, queue, status] = await this.redis.hmget(this.keys.job(jobId), 'model', 'tenant', 'created_at', 'queue', 'status');
    if (!model || !tenant) return undefined;
    return {
      model,
      tenant,
      created_at: Number(createdAt ?? 0),
      ...(queue !== null && { queue }),
      ...((status === 'cancelled' || status === 'expired') && { status }),
    };
  }

  /**
   * Marks a job that was removed from its queue while waiting. Its request is kept here
   * (BullMQ's copy went with the job) so an operator can submit it again as a new job;
   * it expires with the entry, as a retained job's data would.
   */
  async markCancelled(jobId: string, request?: JobRequest): Promise<void> {
    await this.markRemoved(jobId, 'cancelled', request);
  }

  async markExpired(jobId: string, request?: JobRequest): Promise<void> {
    await this.markRemoved(jobId, 'expired', request);
  }

  /** The request kept by markCancelled/markExpired, as stored (the caller validates it): undefined when none is. */
  async removedRequest(jobId: string): Promise<unknown> {
    const raw = await this.redis.hget(this.keys.job(jobId), 'request');
    if (raw === null) return undefined;
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      return undefined;
    }
  }

  private async markRemoved(jobId: string, status: 'cancelled' | 'expired', request: JobRequest | undefined): Promise<void> {
    const fields = request === undefined ? ['status', status] : ['status', status, 'request', JSON.stringify(request)];
    await this.redis.sy_mark_job_index_v1(this.keys.job(jobId), ...fields);
  }

  async delete(jobId: string): Promise<void> {
    await this.redis.del(this.keys.job(jobId));
  }
}
