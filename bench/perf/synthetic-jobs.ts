import { redisKeys } from '@switchyard/protocol';
import { ScriptedJobs, type Attempt, type RedisConnection } from '@switchyard/redis';

/** The attempt that "holds" every synthetic job: the producer streams as it. */
export const SYNTHETIC_ATTEMPT: Attempt = { token: 'bench-producer', number: 1 };

/**
 * Jobs that exist for the API (record, `queued` and `started` events, through the job's
 * transitions) but that no agent runs: a producer process streams their tokens as
 * {@link SYNTHETIC_ATTEMPT} instead, so a benchmark measures the API's relay alone.
 */
export async function createSyntheticJobs(redis: RedisConnection, prefix: string, count: number, model = 'bench-model:latest'): Promise<string[]> {
  const keys = redisKeys(prefix);
  const jobs = new ScriptedJobs(redis, keys);
  const ids = Array.from({ length: count }, (_, i) => `relay${i.toString(36).padStart(6, '0')}`);
  for (let i = 0; i < ids.length; i += 500) {
    await Promise.all(
      ids.slice(i, i + 500).map(async (id) => {
        await jobs.create(id, { model }, { type: 'queued', position: 0, depth: 0 });
        await jobs.lifecycle.claim(id, 'bench-producer', SYNTHETIC_ATTEMPT, 'agent_lost');
        await jobs.lifecycle.start(id, SYNTHETIC_ATTEMPT, { type: 'started', agent: 'bench-producer', cold: false, load_ms: 0 });
      }),
    );
  }
  return ids;
}
