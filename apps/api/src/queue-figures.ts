import type { ModelLedgerStats } from '@switchyard/redis';
import type { QueueFigures } from './fleet-ui/summary.js';

/** One queue's backpressure figures, as `GET /v1/models` and the fleet summary answer them. */
export type { QueueFigures };

/**
 * The figures of one queue key from BullMQ's counts and the admission ledger's stats: what
 * the depth limit counts (admitted, not started yet; also jobs an agent has claimed and is
 * still loading for, until seen), how long the longest-waiting job has waited, and the
 * measured completions per second that Retry-After and ETAs are computed from.
 */
export function queueFigures(
  counts: ReadonlyMap<string, { waiting: number; active: number }>,
  ledger: ReadonlyMap<string, ModelLedgerStats>,
  now: number,
): (queueKey: string) => QueueFigures {
  return (queueKey) => {
    const count = counts.get(queueKey);
    const stats = ledger.get(queueKey);
    return {
      waiting: count?.waiting ?? 0,
      active: count?.active ?? 0,
      depth: stats?.depth ?? 0,
      oldest_wait_s: stats?.oldestSubmittedAt !== undefined ? Math.round((now - stats.oldestSubmittedAt) / 100) / 10 : 0,
      drain_rate_per_s: Math.round((stats?.drainPerS ?? 0) * 1000) / 1000,
    };
  };
}

/** A model's figures over all its queues (its own and its digest-pinned ones). */
export function modelFigures(all: readonly QueueFigures[]): QueueFigures {
  const sum = (field: keyof QueueFigures) => all.reduce((total, figure) => total + figure[field], 0);
  return {
    waiting: sum('waiting'),
    active: sum('active'),
    depth: sum('depth'),
    oldest_wait_s: Math.max(0, ...all.map((figure) => figure.oldest_wait_s)),
    drain_rate_per_s: Math.round(sum('drain_rate_per_s') * 1000) / 1000,
  };
}
