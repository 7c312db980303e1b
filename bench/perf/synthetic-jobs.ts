import type { Redis } from 'ioredis';
import { redisKeys } from '@switchyard/protocol';
import { EventLog, JobIndex } from '@switchyard/redis';

/**
 * Jobs that exist for the API (index entry and a `queued` event) but that no agent runs:
 * a producer process writes their token events instead, so a benchmark measures the
 * API's relay alone.
 */
export async function createSyntheticJobs(redis: Redis, prefix: string, count: number, model = 'bench-model:latest'): Promise<string[]> {
  const keys = redisKeys(prefix);
  const index = new JobIndex(redis, keys);
  const log = new EventLog(redis, keys);
  const ids = Array.from({ length: count }, (_, i) => `relay${i.toString(36).padStart(6, '0')}`);
  for (let i = 0; i < ids.length; i += 500) {
    await Promise.all(
      ids.slice(i, i + 500).map(async (id) => {
        await index.put(id, { model, tenant: 'default', created_at: Date.now() });
        await log.append(id, { type: 'queued', position: 0, depth: 0 });
      }),
    );
  }
  return ids;
}
