/**
 * The agents live in wall-clock time while the simulated GPUs run `time_scale` times faster
 * than it. For the comparison to be fair every duration an agent's policy is tuned in must
 * shrink by the same factor — an idle-unload window of 10 minutes is 10 minutes of *trace*
 * time, i.e. 60 s of wall clock at time_scale 0.1 — and the load throughput it assumes must
 * grow by it. Control-loop periods (heartbeats, sweeps, placement rounds) shrink too, so the
 * agent reacts as fast in trace time as it would for real, but never below a floor that the
 * 2-core machine can sustain; the floor is reported, not hidden.
 *
 * Defaults are read from the agent's own config schema at run time, so this follows the
 * agent's defaults as they change. A config field measured in time that is not listed here
 * is reported as `unscaled` in the results.
 */
export type ScalingRule = { kind: 'duration' } | { kind: 'period'; floorMs: number } | { kind: 'throughput' } | { kind: 'keep'; why: string };

export const AGENT_SCALING: Readonly<Record<string, ScalingRule>> = {
  idleUnloadMs: { kind: 'duration' },
  minResidencyMs: { kind: 'duration' },
  extraCopyIdleMs: { kind: 'duration' },
  demandWindowMs: { kind: 'duration' },
  drainForColdAfterMs: { kind: 'duration' },
  displacementAgingMs: { kind: 'duration' },
  drainTimeoutMs: { kind: 'duration' },
  minExpectedLoadMs: { kind: 'duration' },
  unfitCooldownMs: { kind: 'duration' },
  recencyTauMs: { kind: 'duration' },
  demandHorizonMs: { kind: 'duration' },
  placementIntervalMs: { kind: 'period', floorMs: 25 },
  heartbeatIntervalMs: { kind: 'period', floorMs: 200 },
  // Liveness only (no agent dies here); short TTLs would drop agents during a CPU stall.
  heartbeatTtlMs: { kind: 'period', floorMs: 3_000 },
  inventoryRefreshMs: { kind: 'period', floorMs: 500 },
  sweepIntervalMs: { kind: 'period', floorMs: 50 },
  loadBytesPerSecond: { kind: 'throughput' },
  lockDurationMs: { kind: 'keep', why: 'failure handling only; a short lock under CPU stalls would re-run healthy jobs' },
  stalledIntervalMs: { kind: 'keep', why: 'failure handling only' },
  claimSpreadMs: { kind: 'keep', why: 'orders claims of one announcement between agents (wall-clock latency), not a policy duration' },
  tokenCoalesceMs: { kind: 'keep', why: 'batching window for Redis writes; the first token never waits' },
};

/** API config fields scaled the same way. */
export const API_SCALING: Readonly<Record<string, ScalingRule>> = {
  fleetCacheMs: { kind: 'period', floorMs: 100 },
};

export interface ScaledField {
  field: string;
  default: unknown;
  value: unknown;
  rule: ScalingRule['kind'] | 'unscaled';
}

export function scaleValue(value: number, rule: ScalingRule, timeScale: number): number {
  switch (rule.kind) {
    case 'duration':
      return Math.max(1, Math.round(value * timeScale));
    case 'period':
      return Math.max(rule.floorMs, Math.round(value * timeScale));
    case 'throughput':
      return Math.round(value / Math.max(timeScale, 1e-6));
    case 'keep':
      return value;
  }
}

/**
 * Scaled overrides for every numeric field of `defaults` named in `rules`, plus a report of
 * each time-like field (ends in Ms / PerSecond / Seconds) and what happened to it.
 */
export function scaleConfig(
  defaults: Record<string, unknown>,
  rules: Readonly<Record<string, ScalingRule>>,
  timeScale: number,
): { overrides: Record<string, number>; report: ScaledField[] } {
  const overrides: Record<string, number> = {};
  const report: ScaledField[] = [];
  for (const [field, value] of Object.entries(defaults)) {
    const rule = rules[field];
    const timeLike = /(Ms|PerSecond|Seconds)$/.test(field);
    if (rule && typeof value === 'number') {
      const scaled = scaleValue(value, rule, timeScale);
      overrides[field] = scaled;
      report.push({ field, default: value, value: scaled, rule: rule.kind });
    } else if (timeLike) {
      report.push({ field, default: value, value, rule: 'unscaled' });
    }
  }
  return { overrides, report };
}
