import type { RedisConnection } from '@switchyard/redis';
import { ModelInfoRecord, type RedisKeys } from '@switchyard/protocol';

/**
 * What agents shared about each model (their backend's `/api/show` answer), by canonical
 * name. Missing or unreadable records are simply absent: callers fall back to what the
 * heartbeats say. One GET per model rather than MGET or a pipeline: under Redis Cluster the
 * keys of different models live in different slots, on different nodes; the GETs are sent
 * without waiting for each other's replies either way.
 */
export async function readModelInfos(ctx: { redis: RedisConnection; keys: RedisKeys }, names: readonly string[]): Promise<Map<string, ModelInfoRecord>> {
  const infos = new Map<string, ModelInfoRecord>();
  if (names.length === 0) return infos;
  const results = await Promise.allSettled(names.map((name) => ctx.redis.get(ctx.keys.modelInfo(name))));
  results.forEach((result, index) => {
    const name = names[index];
    const raw = result.status === 'fulfilled' ? result.value : null;
    if (typeof raw !== 'string' || name === undefined) return;
    try {
      const parsed = ModelInfoRecord.safeParse(JSON.parse(raw));
      if (parsed.success) infos.set(name, parsed.data);
    } catch {
      // A record that is not JSON is treated as missing.
    }
  });
  return infos;
}
