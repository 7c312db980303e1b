/**
 * A read from Redis reused for `maxAgeMs`; concurrent callers share one read in flight.
 * Admission (every submit) and placement (every few hundred ms) both read the whole fleet's
 * heartbeats this way instead of once per caller.
 */
export class CachedRead<T> {
  private cached: { at: number; value: T } | undefined;
  private inFlight: Promise<T> | undefined;

  constructor(
    private readonly read: () => Promise<T>,
    private readonly maxAgeMs: number,
  ) {}

  /** The cached value while fresh, else a new read; `fresh` forces a read that starts now. */
  async get(fresh = false): Promise<T> {
    if (!fresh && this.cached && Date.now() - this.cached.at < this.maxAgeMs) return this.cached.value;
    // A forced read must start after the call: a read already in flight may predate it.
    if (fresh && this.inFlight) await this.inFlight.catch(() => undefined);
    this.inFlight ??= this.read()
      .then((value) => {
        this.cached = { at: Date.now(), value };
        return value;
      })
      .finally(() => {
        this.inFlight = undefined;
      });
    return this.inFlight;
  }
}
