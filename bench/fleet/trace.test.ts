import { describe, expect, it } from 'vitest';
import { FLEET_CATALOG } from './catalog.js';
import { DEFAULT_TRACE_PARAMS, generateTrace, modelCounts, zipfProbabilities, type TraceParams } from './trace.js';

const models = FLEET_CATALOG.map((model) => model.name);
const params = (overrides: Partial<TraceParams> = {}): TraceParams => ({ ...DEFAULT_TRACE_PARAMS, models, ...overrides });

describe('fleet trace', () => {
  it('is the same for the same seed and differs for another', () => {
    const a = generateTrace(params({ seed: 7 }));
    const b = generateTrace(params({ seed: 7 }));
    const c = generateTrace(params({ seed: 8 }));
    expect(b).toEqual(a);
    expect(c.requests.map((r) => [r.at_s, r.model])).not.toEqual(a.requests.map((r) => [r.at_s, r.model]));
    expect(c.phases[0]?.ranking).not.toEqual(a.phases[0]?.ranking);
  });

  it('has 20 models of 0.4–40 GB', () => {
    expect(FLEET_CATALOG).toHaveLength(20);
    const sizes = FLEET_CATALOG.map((model) => model.size_bytes);
    expect(Math.min(...sizes)).toBeLessThan(0.5e9);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(40e9);
    expect(new Set(models).size).toBe(20);
  });

  it('orders requests in time, within the trace, with ids in order and mean rate near the target', () => {
    const trace = generateTrace(params());
    expect(trace.dropped).toBe(0);
    trace.requests.forEach((request, index) => {
      expect(request.id).toBe(index);
      expect(request.at_s).toBeGreaterThanOrEqual(0);
      expect(request.at_s).toBeLessThan(trace.end_s);
      if (index > 0) expect(request.at_s).toBeGreaterThanOrEqual(trace.requests[index - 1]!.at_s);
      expect(request.warmup).toBe(request.at_s < trace.params.warmup_s);
    });
    const steady = trace.requests.filter((r) => !r.warmup && r.burst === null).length;
    const rate = steady / trace.params.duration_s;
    expect(rate).toBeGreaterThan(trace.params.rate_per_s * 0.85);
    expect(rate).toBeLessThan(trace.params.rate_per_s * 1.15);
  });

  it('draws models with a Zipf shape', () => {
    // One phase, no bursts, many requests: observed shares close to 1/r^s normalised.
    const trace = generateTrace(params({ phases: 1, burst_every_s: 0, warmup_s: 0, duration_s: 20_000, rate_per_s: 1, diurnal_amplitude: 0, max_requests: 50_000 }));
    const expected = zipfProbabilities(20, trace.params.zipf_s);
    const total = trace.requests.length;
    const ranking = trace.phases[0]!.ranking;
    const counts = new Map(modelCounts(trace.requests).map((entry) => [entry.model, entry.requests]));
    ranking.forEach((model, rank) => {
      const share = (counts.get(model) ?? 0) / total;
      expect(Math.abs(share - expected[rank]!)).toBeLessThan(0.012);
    });
    // Head heavy: the top 5 of 20 take well over half the traffic.
    const top5 = ranking.slice(0, 5).reduce((sum, model) => sum + (counts.get(model) ?? 0), 0) / total;
    expect(top5).toBeGreaterThan(0.55);
  });

  it('rotates which models are hot from phase to phase', () => {
    const trace = generateTrace(params({ burst_every_s: 0, rate_per_s: 6, max_requests: 20_000 }));
    expect(trace.phases).toHaveLength(4);
    for (const phase of trace.phases.slice(1)) {
      const previous = trace.phases[phase.index - 1]!;
      // Ranks 6-10 of the previous phase become the new top 5; the old top 5 drop to the tail.
      expect(phase.ranking.slice(0, 5)).toEqual(previous.ranking.slice(5, 10));
      expect(phase.ranking.slice(15)).toEqual(previous.ranking.slice(0, 5));
      const inPhase = trace.requests.filter((r) => !r.warmup && r.phase === phase.index);
      expect(inPhase.every((r) => r.at_s >= phase.start_s && r.at_s < phase.end_s)).toBe(true);
      // The most requested model of each phase is one of that phase's top 3.
      expect(phase.ranking.slice(0, 3)).toContain(modelCounts(inPhase)[0]!.model);
    }
    // Every model is in some phase's top 5: the hot set moves across the whole catalog.
    expect(new Set(trace.phases.flatMap((phase) => phase.ranking.slice(0, 5))).size).toBe(20);
  });

  it('adds bursts of one model within seconds, only in the measured day', () => {
    const trace = generateTrace(params());
    expect(trace.bursts.length).toBeGreaterThan(5);
    for (const burst of trace.bursts) {
      const members = trace.requests.filter((r) => r.burst === burst.index);
      expect(members).toHaveLength(burst.size);
      expect(members.every((r) => r.model === burst.model && !r.warmup)).toBe(true);
      const times = members.map((r) => r.at_s);
      expect(Math.max(...times) - Math.min(...times)).toBeLessThanOrEqual(burst.span_s + 1e-9);
      expect(burst.size).toBeGreaterThanOrEqual(trace.params.burst_size[0]);
      expect(burst.size).toBeLessThanOrEqual(trace.params.burst_size[1]);
    }
    expect(trace.bursts.some((burst) => burst.tail)).toBe(true);
  });

  it('never exceeds max_requests', () => {
    const trace = generateTrace(params({ max_requests: 100 }));
    expect(trace.requests).toHaveLength(100);
    expect(trace.dropped).toBeGreaterThan(0);
  });
});
