import { describe, expect, it } from 'vitest';
import { capacityReference, pooledCache } from './capacity.js';
import { round } from '../common/stats.js';
import type { NodeSpec } from './fleet-config.js';
import type { Trace, TraceRequest } from './trace.js';

const GB = 1e9;
const node = (name: string, gb: number): NodeSpec => ({ name, gpu_name: name, vram_bytes: gb * GB });

/** A two-phase trace with the given request counts per model in each phase (plus warm-up noise). */
function traceOf(phases: Array<Record<string, number>>): Trace {
  const requests: TraceRequest[] = [];
  let id = 0;
  const request = (at_s: number, model: string, warmup: boolean, phase: number): TraceRequest => ({
    id: id++,
    at_s,
    model,
    phase,
    warmup,
    burst: null,
    prompt: 'p',
    seed: 1,
  });
  // Warm-up traffic must not count.
  for (let i = 0; i < 50; i++) requests.push(request(1, 'warmup-only', true, 0));
  phases.forEach((counts, phase) => {
    for (const [model, count] of Object.entries(counts)) {
      for (let i = 0; i < count; i++) requests.push(request(10 + phase * 100 + i * 0.01, model, false, phase));
    }
  });
  return {
    params: {} as Trace['params'],
    phases: phases.map((_, index) => ({ index, name: `p${index}`, start_s: 10 + index * 100, end_s: 110 + index * 100, ranking: [] })),
    bursts: [],
    requests,
    end_s: 10 + phases.length * 100,
    dropped: 0,
  };
}

const noLoadTime = () => 0;

/** A trace of exactly these requests: [trace second, model, warm-up?]. */
function traceAt(requests: Array<[number, string, boolean?]>): Trace {
  return {
    params: {} as Trace['params'],
    phases: [{ index: 0, name: 'p0', start_s: 0, end_s: 1_000, ranking: [] }],
    bursts: [],
    requests: requests.map(([at_s, model, warmup], id) => ({ id, at_s, model, phase: 0, warmup: warmup ?? false, burst: null, prompt: 'p', seed: 1 })),
    end_s: 1_000,
    dropped: 0,
  };
}

describe('capacity reference', () => {
  it('packs the most requested models per GB onto the nodes and counts the rest cold, phase by phase', () => {
    const need = new Map([
      ['big', 40 * GB],
      ['mid', 20 * GB],
      ['small', 5 * GB],
      ['warmup-only', 1 * GB],
    ]);
    // One 48 GB node. Phase 0: big is asked most, but mid + small serve more requests per GB.
    // Phase 1: only big is asked for, and it fits.
    const reference = capacityReference(traceOf([{ big: 30, mid: 25, small: 10 }, { big: 35 }]), [node('a', 48)], need, noLoadTime);
    expect(reference.phases[0]).toMatchObject({ requests: 65, requests_outside: 30, models_outside: ['big'], placed_models: 2 });
    expect(reference.phases[1]).toMatchObject({ requests: 35, requests_outside: 0, models_outside: [] });
    expect(reference.static_warm_share).toBeCloseTo(70 / 100, 4);
    // Greedy is not optimal here (big + small would serve 75); the bound is above both:
    // small, mid, then 23 of big's 40 GB in phase 0 (10 + 25 + 30 × 23/40), big in phase 1.
    expect(reference.static_warm_share_bound).toBeCloseTo((10 + 25 + (30 * 23) / 40 + 35) / 100, 4);
    expect(reference.fleet_vram_gb).toBe(48);
    expect(reference.catalog_vram_gb).toBe(66);
  });

  it('respects node boundaries: two half-size nodes do not hold a model that fits only their sum', () => {
    const need = new Map([['big', 40 * GB]]);
    const split = capacityReference(traceOf([{ big: 10 }]), [node('a', 24), node('b', 24)], need, noLoadTime);
    expect(split.static_warm_share).toBe(0);
    expect(split.static_warm_share_bound).toBe(0);
    const whole = capacityReference(traceOf([{ big: 10 }]), [node('a', 48)], need, noLoadTime);
    expect(whole.static_warm_share).toBe(1);
  });
});

describe('pooled cache references', () => {
  const need = new Map([
    ['a', 20 * GB],
    ['b', 20 * GB],
    ['c', 20 * GB],
  ]);

  it('knowing the future, evicts the model asked for furthest ahead; LRU the one asked for longest ago', () => {
    // Room for two. When c comes, a is asked for again before b, so b goes; when b comes
    // back, c is never asked for again, so c goes and a stays warm for its last request.
    const trace = traceAt([
      [0, 'a'],
      [100, 'b'],
      [200, 'c'],
      [300, 'a'],
      [400, 'b'],
      [500, 'a'],
    ]);
    expect(pooledCache(trace, [node('n', 48)], need, () => 1, 'furthest_next_use')).toEqual({ warm_share: round(2 / 6, 4), loads: 4 });
    // LRU evicts a for c, b for a, c for b: only the last request is warm.
    expect(pooledCache(trace, [node('n', 48)], need, () => 1, 'least_recently_used')).toEqual({ warm_share: round(1 / 6, 4), loads: 5 });
  });

  it('LRU refreshes a model on every request, not only when it loads', () => {
    // a is asked for again before c comes, so b is the least recently used and goes
    // (first-in-first-out would evict a and miss its last request).
    const trace = traceAt([
      [0, 'a'],
      [100, 'b'],
      [200, 'a'],
      [300, 'c'],
      [400, 'a'],
    ]);
    expect(pooledCache(trace, [node('n', 48)], need, () => 1, 'least_recently_used')).toEqual({ warm_share: round(2 / 5, 4), loads: 3 });
  });

  it('evicts as many models as a big one needs, and never loads a model no single node can hold', () => {
    const sizes = new Map([...need, ['big', 40 * GB]]);
    // Requests listed out of time order: the cache replays them by time.
    const trace = traceAt([
      [200, 'a'],
      [0, 'a'],
      [100, 'big'],
      [1, 'b'],
    ]);
    // a and b (20 GB each) both go for big on one 48 GB node; a is cold again after.
    expect(pooledCache(trace, [node('n', 48)], sizes, () => 1, 'furthest_next_use')).toEqual({ warm_share: 0, loads: 4 });
    // Two 24 GB nodes pool 48 GB, but no node holds 40 GB: big is never loaded, a stays.
    expect(pooledCache(trace, [node('x', 24), node('y', 24)], sizes, () => 1, 'furthest_next_use')).toEqual({ warm_share: 0.25, loads: 2 });
  });

  it('pools the nodes, counts requests during a load as cold, and lets warm-up fill the cache unmeasured', () => {
    // Two 24 GB nodes pooled hold a and b together, so b does not push a out.
    const trace = traceAt([
      [0, 'a', true],
      [10, 'b'],
      [10.5, 'b'],
      [12, 'b'],
      [13, 'a'],
    ]);
    // a was loaded in the warm-up; b's load takes 2 s, so the request at 10.5 is cold too.
    expect(pooledCache(trace, [node('x', 24), node('y', 24)], need, () => 2, 'furthest_next_use')).toEqual({ warm_share: 0.5, loads: 1 });
  });
});
