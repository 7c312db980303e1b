import { describe, expect, it } from 'vitest';
import { DemandTracker } from './demand-tracker.js';

describe('DemandTracker', () => {
  const T0 = 1_000_000;

  it('reads the rate over the time observed until a whole window has passed, so a first burst is not diluted by the window', () => {
    const demand = new DemandTracker(30_000);
    // 10 arrivals a second for 3 s, the model's first.
    for (let i = 0; i < 30; i++) demand.record('m', T0 + i * 100);
    expect(demand.ratePerS('m', T0 + 3_000)).toBeCloseTo(10, 5);
    // Later, quiet: the window's rate.
    expect(demand.ratePerS('m', T0 + 30_000)).toBeCloseTo(1, 5);
    expect(demand.ratePerS('m', T0 + 40_000)).toBe(0);
    expect(demand.ratePerS('other', T0)).toBe(0);
  });

  it('counts at least a second of observation, so one arrival is not read as a flood', () => {
    const demand = new DemandTracker(30_000);
    demand.record('m', T0);
    expect(demand.ratePerS('m', T0)).toBe(1);
    expect(demand.ratePerS('m', T0 + 500)).toBe(1);
    expect(demand.ratePerS('m', T0 + 4_000)).toBeCloseTo(0.25, 5);
  });

  it('reads a burst on a model asked for for a long time within the burst window, where the window’s rate lags', () => {
    const demand = new DemandTracker(30_000, 5_000);
    // A steady 1 a second for a minute…
    for (let s = 0; s < 60; s++) demand.record('m', T0 + s * 1_000);
    // …then 20 within a second.
    for (let i = 0; i < 20; i++) demand.record('m', T0 + 60_000 + i * 50);
    const now = T0 + 61_000;
    // The window (31–61 s): 29 steady arrivals and the 20.
    expect(demand.ratePerS('m', now)).toBeCloseTo((29 + 20) / 30, 5);
    // The last 5 s (56–61 s): 4 steady arrivals plus the 20.
    expect(demand.burstRatePerS('m', now)).toBeCloseTo(24 / 5, 5);
    expect(demand.burstRatePerS('m', T0 + 100_000)).toBe(0);
  });

  it('remembers the last arrival beyond the window', () => {
    const demand = new DemandTracker(1_000);
    demand.record('m', T0);
    expect(demand.ratePerS('m', T0 + 5_000)).toBe(0);
    expect(demand.lastArrivalAt('m')).toBe(T0);
  });
});
