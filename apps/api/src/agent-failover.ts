import type { RedisConnection } from '@switchyard/redis';
import type { Logger } from 'pino';
import type { RedisKeys } from '@switchyard/protocol';
import type { JobLifecycle, JobRecords, QueueRegistry } from '@switchyard/redis';

export interface AgentFailoverDeps {
  redis: RedisConnection;
  keys: RedisKeys;
  queues: QueueRegistry;
  records: JobRecords;
  lifecycle: JobLifecycle;
  /** An agent whose newest heartbeat is this old has lost its jobs. */
  lapseMs: number;
  logger: Logger;
  /** Counts jobs put back (a metric). */
  onRequeued?: (count: number) => void;
}

/** How far back the heartbeat index is read: agents gone longer than this were handled, or never held a job. */
const LOOKBACK_MS = 24 * 3600_000;

/**
 * Moves the jobs of an agent whose heartbeat lapsed back to their queues at once, instead of
 * waiting for BullMQ's lock to expire and its stalled check (15 s and more): that stays the
 * backstop, this is the path. Runs in the API's maintenance (one replica at a time).
 *
 * The fleet knows an agent is gone as soon as its beats stop: an agent beats every
 * HEARTBEAT_INTERVAL_MS (2 s), so a beat `lapseMs` old (3.5 s by default) is a missed beat
 * plus margin. For every active job whose record names a lapsed agent, BullMQ's own
 * `moveToWait` is called with the attempt's lock token (the record keeps it, from the
 * claim), then the job's `requeue` transition records it as queued; the next agent's claim
 * is a retry (`restarted`) with a new token, so anything the old attempt still writes (an
 * agent that was only paused) is fenced off, and it aborts its backend request.
 *
 * An agent that was merely slow to beat loses its jobs too: they run again elsewhere, once.
 */
export class AgentFailover {
  /** Lapsed agents already handled, with the beat they were handled at (a newer beat means it came back). */
  private readonly handled = new Map<string, number>();
  /** When this replica last ran a round, and until when it judges nothing (see `tick`). */
  private lastRound: number | undefined;
  private quietUntil = 0;

  constructor(private readonly deps: AgentFailoverDeps) {}

  /** One round: resolves with the jobs put back. */
  async tick(now: number): Promise<number> {
    const { redis, keys, logger } = this.deps;
    // Heartbeats read stale after a time this replica could not look (Redis was away, so no
    // agent could beat either; or it just took the maintenance over): judge nobody until the
    // agents have had a lapse to beat again. A chaos run saw a 5 s Redis outage move the jobs
    // of live agents.
    if (this.lastRound === undefined || now - this.lastRound > this.deps.lapseMs) this.quietUntil = now + this.deps.lapseMs;
    this.lastRound = now;
    if (now < this.quietUntil) return 0;
    const rows = await redis.zrangebyscore(keys.agents, now - LOOKBACK_MS, now - this.deps.lapseMs, 'WITHSCORES');
    const lapsed = new Map<string, number>();
    for (let i = 0; i < rows.length; i += 2) {
      const agent = rows[i]!;
      const beat = Number(rows[i + 1]);
      if (this.handled.get(agent) !== beat) lapsed.set(agent, beat);
    }
    for (const agent of this.handled.keys()) if (!rows.includes(agent)) this.handled.delete(agent);
    if (lapsed.size === 0) return 0;

    let requeued = 0;
    const woken = new Set<string>();
    const queues = this.deps.queues;
    await queues.discover();
    for (const [queueKey, queue] of queues.opened()) {
      const active = await queue.getRanges(['active'], 0, -1);
      if (active.length === 0) continue;
      const held = await Promise.all(active.map(async (jobId) => ({ jobId, record: await this.deps.records.get(jobId) })));
      for (const { jobId, record } of held) {
        if (!record?.agent || !record.attempt || !lapsed.has(record.agent)) continue;
        const job = await queue.getJob(jobId);
        if (!job) continue;
        // BullMQ's own move, under the attempt's lock: refused (it throws) when the lock is no
        // longer that attempt's — the stalled check took the job meanwhile, or the agent did.
        const moved = await job.moveToWait(record.attempt).then(
          () => true,
          () => false,
        );
        if (!moved) continue;
        // The job is back in its queue either way; a failed record write leaves it reading
        // `running` until its next claim (cancel and expiry handle that, see JobService).
        await this.deps.lifecycle.requeue(jobId, { token: record.attempt, number: job.attemptsStarted }).catch((error: unknown) => {
          logger.warn({ err: error, jobId }, 'job back in its queue, but its record could not say so');
        });
        requeued++;
        woken.add(queueKey);
        logger.warn({ jobId, agent: record.agent, lapsedMs: now - lapsed.get(record.agent)! }, 'agent heartbeat lapsed: its job is back in its queue');
      }
    }
    for (const [agent, beat] of lapsed) this.handled.set(agent, beat);
    // Wakes the agents now rather than at their next sweep.
    await Promise.all([...woken].map((queueKey) => redis.publish(keys.workChannel, queueKey).catch(() => undefined)));
    if (requeued > 0) this.deps.onRequeued?.(requeued);
    return requeued;
  }
}
