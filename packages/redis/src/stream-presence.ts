import type { RedisKeys } from '@switchyard/protocol';
import type { RedisConnection } from './connection.js';

/** How long a presence mark outlives the last refresh of the replica that set it. */
export const STREAM_PRESENCE_TTL_MS = 3_000;
/** How often a replica renews the marks of the streams it has open (a third of the TTL: two refreshes may fail before one lapses). */
export const STREAM_PRESENCE_REFRESH_MS = 1_000;

/**
 * Which jobs some API replica is streaming right now, for the disconnect grace.
 *
 * Each replica marks every job it has a native event stream of open with a short-lived key
 * in the job's slot (`jobStreamed`), renewed while the stream lasts; a job is streamed while
 * its mark exists. The grace used to ask `PUBSUB NUMSUB` of the job channel, but under Redis
 * Cluster that sees the subscribers of one node only, and shard channels are counted per
 * shard. A mark is not removed when a replica's last stream of the job closes: another
 * replica may be streaming it too and renews the same key. So a closed stream counts as
 * open for up to {@link STREAM_PRESENCE_TTL_MS} more, which only lengthens the grace.
 */
export class StreamPresence {
  private readonly open = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Pick<RedisKeys, 'jobStreamed'>,
    private readonly ttlMs = STREAM_PRESENCE_TTL_MS,
    private readonly refreshMs = STREAM_PRESENCE_REFRESH_MS,
  ) {}

  /**
   * Marks the job streamed from now until the returned function is called (once per
   * `hold`; holds of one job are counted). Resolves once the first mark is written, so a
   * maintenance round that runs after it sees the stream; never rejects: a mark Redis
   * refused now is written by the next refresh.
   */
  async hold(jobId: string): Promise<() => void> {
    const count = this.open.get(jobId) ?? 0;
    this.open.set(jobId, count + 1);
    this.ensureTimer();
    if (count === 0) await this.mark(jobId).catch(() => undefined);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.open.get(jobId) ?? 1) - 1;
      if (left > 0) this.open.set(jobId, left);
      else this.open.delete(jobId);
      if (this.open.size === 0) this.stopTimer();
    };
  }

  /** The jobs among `jobIds` some replica streams. One GET-like call per job: their keys are in as many slots. */
  async streamed(jobIds: readonly string[]): Promise<Set<string>> {
    const found = await Promise.all(jobIds.map((jobId) => this.redis.exists(this.keys.jobStreamed(jobId))));
    return new Set(jobIds.filter((_, index) => found[index] === 1));
  }

  /** Jobs this replica has streams of (for tests and metrics). */
  get count(): number {
    return this.open.size;
  }

  /** Stops renewing; marks lapse within the TTL. */
  close(): void {
    this.open.clear();
    this.stopTimer();
  }

  private async mark(jobId: string): Promise<void> {
    await this.redis.set(this.keys.jobStreamed(jobId), '1', 'PX', this.ttlMs);
  }

  private ensureTimer(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      // A refresh that fails (Redis away) is retried by the next; the TTL covers two misses.
      for (const jobId of this.open.keys()) this.mark(jobId).catch(() => undefined);
    }, this.refreshMs);
    this.timer.unref();
  }

  private stopTimer(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
