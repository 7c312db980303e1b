import type { Redis } from 'ioredis';
import type { RedisKeys } from '@switchyard/protocol';

export interface JobIndexEntry {
  model: string;
  tenant: string;
  created_at: number;
  /** Queue key when it differs from the model (a digest-pinned job). */
  queue?: string;
  /** Set when the job ended without a BullMQ record to show it (cancelled or expired while queued). */
  status?: 'cancelled' | 'expired';
  /** Submitted with `detach: true`: never cancelled because its streams went away. */
  detach?: boolean;
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
  ) {}

  async put(jobId: string, entry: JobIndexEntry): Promise<void> {
    const key = this.keys.job(jobId);
    await this.redis
      .multi()
      .hset(key, {
        model: entry.model,
        tenant: entry.tenant,
        created_at: String(entry.created_at),
        ...(entry.queue !== undefined && { queue: entry.queue }),
        ...(entry.detach && { detach: '1' }),
      })
      .expire(key, this.ttlSeconds)
      .exec();
  }

  async get(jobId: string): Promise<JobIndexEntry | undefined> {
    const fields = await this.redis.hgetall(this.keys.job(jobId));
    if (!fields.model || !fields.tenant) return undefined;
    return {
      model: fields.model,
      tenant: fields.tenant,
      created_at: Number(fields.created_at ?? 0),
      ...(fields.queue !== undefined && { queue: fields.queue }),
      ...((fields.status === 'cancelled' || fields.status === 'expired') && { status: fields.status }),
      ...(fields.detach === '1' && { detach: true }),
    };
  }

  async markCancelled(jobId: string): Promise<void> {
    await this.redis.hset(this.keys.job(jobId), 'status', 'cancelled');
  }

  async markExpired(jobId: string): Promise<void> {
    await this.redis.hset(this.keys.job(jobId), 'status', 'expired');
  }

  async delete(jobId: string): Promise<void> {
    await this.redis.del(this.keys.job(jobId));
  }
}
