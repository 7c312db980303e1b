/**
 * Arrivals per model over a sliding window, counted from the work announcements every
 * agent hears (one per submitted job, fleet-wide), so every agent sees the same demand
 * without extra Redis reads.
 */
export class DemandTracker {
  private readonly arrivals = new Map<string, number[]>();
  private readonly lastArrival = new Map<string, number>();
  /** When each model was first asked for since start: the rate's denominator until a full window has passed. */
  private readonly firstArrival = new Map<string, number>();
  /** The span of `burstRatePerS`. */
  readonly burstWindowMs: number;

  constructor(
    private readonly windowMs: number,
    burstWindowMs = windowMs / 6,
  ) {
    this.burstWindowMs = Math.max(1, Math.min(windowMs, burstWindowMs));
  }

  record(model: string, at = Date.now()): void {
    this.lastArrival.set(model, Math.max(at, this.lastArrival.get(model) ?? 0));
    if (!this.firstArrival.has(model)) this.firstArrival.set(model, at);
    let times = this.arrivals.get(model);
    if (!times) {
      times = [];
      this.arrivals.set(model, times);
    }
    times.push(at);
    if (times.length > 4096) this.prune(times, at);
  }

  /**
   * Arrivals per second over the window, or over the time observed when the model was first
   * asked for less than a window ago: dividing a first burst by the whole window read 3.5/s
   * where 9.7/s arrived (issue 17). The span is at least a second, so one arrival is not
   * read as a flood.
   */
  ratePerS(model: string, now = Date.now()): number {
    const times = this.arrivals.get(model);
    if (!times) return 0;
    this.prune(times, now);
    const observedMs = Math.min(this.windowMs, now - (this.firstArrival.get(model) ?? now));
    return times.length / (Math.max(1_000, observedMs) / 1000);
  }

  /**
   * Arrivals per second over the last `burstWindowMs` (the same rule for a model first
   * seen within it): how fast it is asked for now, where the window's rate says how fast it
   * was on average. A burst is read within a second or two.
   */
  burstRatePerS(model: string, now = Date.now()): number {
    const times = this.arrivals.get(model);
    if (!times) return 0;
    this.prune(times, now);
    const cutoff = now - this.burstWindowMs;
    let recent = 0;
    for (let i = times.length - 1; i >= 0 && times[i]! >= cutoff; i--) recent++;
    const observedMs = Math.min(this.burstWindowMs, now - (this.firstArrival.get(model) ?? now));
    return recent / (Math.max(1_000, observedMs) / 1000);
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
