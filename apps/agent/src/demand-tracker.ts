/**
 * Arrivals per model over a sliding window, counted from the work announcements every
 * agent hears (one per submitted job, fleet-wide), so every agent sees the same demand
 * without extra Redis reads.
 */
export class DemandTracker {
  private readonly arrivals = new Map<string, number[]>();
  private readonly lastArrival = new Map<string, number>();

  constructor(private readonly windowMs: number) {}

  record(model: string, at = Date.now()): void {
    this.lastArrival.set(model, Math.max(at, this.lastArrival.get(model) ?? 0));
    let times = this.arrivals.get(model);
    if (!times) {
      times = [];
      this.arrivals.set(model, times);
    }
    times.push(at);
    if (times.length > 4096) this.prune(times, at);
  }

  /** Arrivals per second over the window. */
  ratePerS(model: string, now = Date.now()): number {
    const times = this.arrivals.get(model);
    if (!times) return 0;
    this.prune(times, now);
    return times.length / (this.windowMs / 1000);
  }

  /** When the model was last asked for (beyond the window too), if ever since start. */
  lastArrivalAt(model: string): number | undefined {
    return this.lastArrival.get(model);
  }

  private prune(times: number[], now: number): void {
    const cutoff = now - this.windowMs;
    let drop = 0;
    while (drop < times.length && times[drop]! < cutoff) drop++;
    if (drop > 0) times.splice(0, drop);
  }
}
