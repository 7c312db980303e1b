import type { Redis } from 'ioredis';
import { ModelInfoRecord, type RedisKeys } from '@switchyard/protocol';

/**
 * What agents shared about each model (their backend's `/api/show` answer), by canonical
 * name. Missing or unreadable records are simply absent: callers fall back to what the
 * heartbeats say. One pipelined GET per model rather than MGET, since the keys of different
 * models live in different Redis Cluster slots.
 */
export async function readModelInfos(ctx: { redis: Redis; keys: RedisKeys }, names: readonly string[]): Promise<Map<string, ModelInfoRecord>> {
  const infos = new Map<string, ModelInfoRecord>();
  if (names.length === 0) return infos;
  const pipeline = ctx.redis.pipeline();
  for (const name of names) pipeline.get(ctx.keys.modelInfo(name));
  const results = (await pipeline.exec()) ?? [];
  results.forEach(([error, raw], index) => {
    const name = names[index];
    if (error || typeof raw !== 'string' || name === undefined) return;
    try {
      const parsed = ModelInfoRecord.safeParse(JSON.parse(raw));
      if (parsed.success) infos.set(name, parsed.data);
    } catch {
      // A record that is not JSON is treated as missing.
    }
  });
  return infos;
}
