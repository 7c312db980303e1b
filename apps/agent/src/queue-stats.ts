import type { QueueRegistry } from '@switchyard/redis';

export interface WaitStats {
  waiting: number;
  /** Age of the oldest waiting job; 0 when none waits. */
  oldestWaitMs: number;
}

const WAITING = ['waiting', 'prioritized'] as const;

/**
 * Waiting work per model as the placement policy needs it: how many jobs wait (over the
 * model's plain and digest-pinned queues) and for how long the oldest has waited.
 * Counts for all queues go out together; the oldest job is read only where work waits.
 */
export async function readWaitStats(queues: QueueRegistry, queueModels: Map<string, string[]>, now = Date.now()): Promise<Map<string, WaitStats>> {
  const result = new Map<string, WaitStats>();
  await Promise.all(
    [...queueModels].map(async ([model, keys]) => {
      let waiting = 0;
      let oldest = now;
      await Promise.all(
        keys.map(async (key) => {
          const queue = queues.get(key);
          const counts = await queue.getJobCounts(...WAITING);
          const count = (counts.waiting ?? 0) + (counts.prioritized ?? 0);
          if (count === 0) return;
          waiting += count;
          for (const type of WAITING) {
            if (!counts[type]) continue;
            // Ascending order puts the job that has waited longest first.
            const [first] = await queue.getJobs([type], 0, 0, true);
            if (first && first.timestamp < oldest) oldest = first.timestamp;
          }
        }),
      );
      result.set(model, { waiting, oldestWaitMs: waiting > 0 ? Math.max(0, now - oldest) : 0 });
    }),
  );
  return result;
}
