import { describe, expect, it } from 'vitest';
import type { SimStats } from '@switchyard/gpu-sim';
import { FLEET_CATALOG } from './catalog.js';
import { DEFAULT_SIM_SETTINGS } from './fleet-config.js';
import { computeMetrics, loadIntervals, percentileOrNull, slotOnlyQueueWaits } from './metrics.js';
import type { RequestRecord } from './records.js';
import type { SimEvent } from './sim-host.js';

const settings = { ...DEFAULT_SIM_SETTINGS, time_scale: 0.1 };
const T0 = 1_000_000;

function record(overrides: Partial<RequestRecord>): RequestRecord {
  return { id: 0, model: 'llama3.1:8b', warmup: false, burst: false, submitted: T0, outcome: 'completed', node: 'n1', oom: 0, tokens: 10, ...overrides };
}

function stats(loads: number): Array<{ node: string; stats: SimStats }> {
  return [
    {
      node: 'n1',
      stats: { loads_total: loads, evictions_total: 0, unloads_total: 0, errors_total: 0, rejected_total: 0, vram_high_water_bytes: 8e9 } as SimStats,
    },
  ];
}

describe('fleet metrics', () => {
  it('takes nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentileOrNull(values, 50)).toBe(50);
    expect(percentileOrNull(values, 99)).toBe(99);
    expect(percentileOrNull([7], 99)).toBe(7);
    expect(percentileOrNull([], 50)).toBeNull();
  });

  it('pairs load events into intervals per node and model, closing open ones at the end', () => {
    const events: SimEvent[] = [
      { node: 'n1', kind: 'load_start', model: 'a', t: 10 },
      { node: 'n2', kind: 'load_start', model: 'a', t: 12 },
      { node: 'n1', kind: 'load_end', model: 'a', t: 20 },
      { node: 'n1', kind: 'unload', model: 'a', t: 30 },
    ];
    const intervals = loadIntervals(events, 100);
    expect(intervals.get('n1|a')).toEqual([{ start: 10, end: 20 }]);
    expect(intervals.get('n2|a')).toEqual([{ start: 12, end: 100 }]);
  });

  it('calls a request cold when its own model loaded on its node while it waited, and keeps that load out of its queue wait', () => {
    // Times in wall ms; time_scale 0.1, so 100 wall ms = 1 trace second.
    const events: SimEvent[] = [
      { node: 'n1', kind: 'load_start', model: 'llama3.1:8b', t: T0 + 100 },
      { node: 'n1', kind: 'load_end', model: 'llama3.1:8b', t: T0 + 400 },
    ];
    const records = [
      // Waited 1 s for a slot, then 3 s for the load: cold, queue wait 1 s.
      record({ id: 0, submitted: T0, slot: T0 + 400, first_token: T0 + 410 }),
      // Arrived after the load: warm, waited 0.5 s for a slot.
      record({ id: 1, submitted: T0 + 500, slot: T0 + 550, first_token: T0 + 560 }),
      // Same model on another node while n1 loaded: not its load, so warm.
      record({ id: 2, node: 'n2', submitted: T0 + 150, slot: T0 + 150, first_token: T0 + 160 }),
      // Warm-up traffic is not measured.
      record({ id: 3, warmup: true, submitted: T0 - 50, slot: T0 + 400 }),
    ];
    const metrics = computeMetrics({
      replay: { records, startedAt: T0 - 100, warmupEndAt: T0, lastSubmitAt: T0 + 500, endedAt: T0 + 1_000 },
      events,
      stats: stats(1),
      catalog: FLEET_CATALOG,
      settings,
    });
    expect(metrics.completed).toBe(3);
    expect(metrics.warm_share).toBeCloseTo(2 / 3, 3);
    expect(metrics.queue_wait_p99_s).toBeCloseTo(1, 3);
    expect(metrics.queue_wait_p50_s).toBeCloseTo(0.5, 3);
    expect(metrics.ttft_p99_s).toBeCloseTo(4.1, 3);
    expect(metrics.loads).toBe(1);
    // llama3.1:8b: 4.92 GB at 2 GB/s + 0.3 s.
    expect(metrics.load_gpu_seconds).toBeCloseTo(2.8, 1);
    expect(metrics.details.timeline_check).toBe('ok');
    // Per request: the slowest wait (1 s) over llama3.1:8b's own load (2.76 s).
    expect(metrics.details.queue_wait_over_own_load_p99).toBeCloseTo(1 / (0.3 + 4.92e9 / 2e9), 2);
  });

  it('measures what slots alone cost: one always-warm copy per model, measured service times', () => {
    const toTraceS = (ms: number) => ms / 100;
    // Six requests for one model at once, each holding a slot 2 s (200 wall ms), on 4 slots:
    // four start at once, two wait 2 s. Another model's request does not share those slots.
    const burst = Array.from({ length: 6 }, (_, id) => record({ id, submitted: T0, slot: T0 + 5_000 + id, finished: T0 + 5_200 + id }));
    const other = record({ id: 6, model: 'qwen2.5:0.5b', submitted: T0, slot: T0 + 1, finished: T0 + 201 });
    const warmup = record({ id: 7, warmup: true, submitted: T0, slot: T0, finished: T0 + 200 });
    const reference = slotOnlyQueueWaits([...burst, other], 4, toTraceS, 1.5);
    expect(reference.queue_wait_p99_s).toBeCloseTo(2, 3);
    expect(reference.waits_over_target).toBe(2);
    // A warm-up request takes a slot but is not measured.
    expect(slotOnlyQueueWaits([warmup, ...burst], 4, toTraceS, 1.5).waits_over_target).toBe(3);
  });

  it('counts OOM and failures, and lets dropped requests into the percentiles with the time they waited', () => {
    const records = [
      record({ id: 0, submitted: T0, slot: T0 + 10, first_token: T0 + 20 }),
      record({ id: 1, outcome: 'failed', failure: 'oom', oom: 1, submitted: T0, finished: T0 + 5 }),
      record({ id: 2, outcome: 'failed', failure: 'timeout', submitted: T0, finished: T0 + 9_000 }),
    ];
    const metrics = computeMetrics({
      replay: { records, startedAt: T0, warmupEndAt: T0, lastSubmitAt: T0, endedAt: T0 + 10_000 },
      events: [],
      stats: stats(0),
      catalog: FLEET_CATALOG,
      settings,
    });
    expect(metrics.completed).toBe(1);
    expect(metrics.failed).toBe(2);
    expect(metrics.oom).toBe(1);
    expect(metrics.details.failures).toEqual({ oom: 1, timeout: 1 });
    expect(metrics.details.timeouts_in_percentiles).toBe(1);
    expect(metrics.queue_wait_p99_s).toBeCloseTo(90, 3);
  });

  it("flags a timeline that disagrees with the sims' own load counters", () => {
    const metrics = computeMetrics({
      replay: { records: [], startedAt: T0, warmupEndAt: T0, lastSubmitAt: T0, endedAt: T0 },
      events: [],
      stats: stats(2),
      catalog: FLEET_CATALOG,
      settings,
    });
    expect(metrics.details.timeline_check).toMatch(/MISMATCH/);
  });
});
