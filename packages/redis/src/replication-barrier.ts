import type { RedisConnection } from './connection.js';

/**
 * Confirms that writes reached the replicas (`REDIS_WAIT_REPLICAS`): Redis replication is
 * asynchronous, so a master that dies can take its last acknowledged writes with it; `WAIT
 * n timeout` answers how many replicas have everything the calling connection wrote.
 *
 * Why not `WAIT` on the connection that wrote the job: a connection blocked in WAIT runs none
 * of its other commands, and the API sends all its requests' commands down one connection,
 * so every request would queue behind each submit's replication round trip (and behind the
 * whole timeout while a replica is away). Instead this barrier owns a connection of its own
 * and writes a probe key there before its WAIT: replication is one ordered stream, so a
 * replica that has the probe has every write the master applied before it, which includes
 * each write whose reply reached this process before `confirm()` was called.
 *
 * Submits arriving while a WAIT is out share the next one (group commit): under load one
 * round trip confirms many jobs, and a slow replica costs each submit one timeout, not one
 * timeout per submit ahead of it.
 */
export class ReplicationBarrier {
  private pending: Batch | undefined;
  private flushing = false;

  constructor(
    /** A connection of the barrier's own: WAIT blocks it. */
    private readonly connection: RedisConnection,
    /** The probe key, written on every round (a counter). */
    private readonly probeKey: string,
    readonly replicas: number,
    readonly timeoutMs: number,
  ) {}

  /**
   * The number of replicas that have every write this process saw completed before the call
   * (at most `replicas`: WAIT returns as soon as that many confirmed). Rejects when the
   * round could not be sent (Redis unreachable).
   */
  confirm(): Promise<number> {
    const batch = (this.pending ??= new Batch());
    if (!this.flushing) void this.flush();
    return batch.promise;
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending) {
        // Callers arriving from here on join the next round: their writes may come after this probe.
        const batch = this.pending;
        this.pending = undefined;
        try {
          const replies = await this.connection.pipeline().incr(this.probeKey).wait(this.replicas, this.timeoutMs).exec();
          const failed = replies?.find(([error]) => error);
          if (!replies || failed) throw failed?.[0] ?? new Error('replication barrier: no reply');
          batch.resolve(Number(replies[1]![1]));
        } catch (error) {
          batch.reject(error);
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}

class Batch {
  readonly promise: Promise<number>;
  resolve!: (acked: number) => void;
  reject!: (error: unknown) => void;
  constructor() {
    this.promise = new Promise<number>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}
