/**
 * From what the client saw (records) and what the GPUs did (the sims' load timeline and
 * counters) to the numbers the issue asks for. One definition for all three policies:
 *
 * - A request is *warm* when no load of its model ran on the node that served it between its
 *   submission and the moment it held a backend slot — it never waited for its own model to
 *   load. (Switchyard's agents load a model before claiming its jobs, so their own `cold`
 *   flag would call a job warm that waited in Redis through the load; it is reported beside
 *   this, not instead of it.)
 * - *Queue wait* is submission → holding a backend slot, minus the part of it during which
 *   the request's own model was loading on its node: waiting for a slot, behind another
 *   model's load (Ollama's head-of-line), in a Redis queue, behind a refusal and retry.
 *   Loading one's own model shows in warm_share and TTFT, not here.
 * - *TTFT* is submission → first token at the client: everything, overheads included.
 * - Requests the bench gave up on (its per-request timeout or the drain deadline) are failed,
 *   and also enter the queue-wait and TTFT percentiles with the time they had waited when
 *   dropped — a lower bound — so a policy cannot improve its p99 by never answering.
 * - Loads and load GPU-seconds count loads that *started* in the measured part, at their
 *   nominal cost in real GPU seconds (size / load throughput + runner start), whatever the
 *   time scale; failed and refused requests are in `failed`, not in the latency percentiles.
 *
 * All durations are reported in trace ("real GPU") seconds: wall time / time_scale.
 */
import { percentileSorted } from '../common/stats.js';
import type { SimStats } from '@switchyard/gpu-sim';
import { loadSecondsByName, type CatalogModel } from './catalog.js';
import type { SimSettings } from './fleet-config.js';
import type { RequestRecord } from './records.js';
import type { ReplayResult } from './replay.js';
import type { SimEvent } from './sim-host.js';

export interface PolicyMetrics {
  warm_share: number | null;
  loads: number;
  load_gpu_seconds: number;
  oom: number;
  queue_wait_p50_s: number | null;
  queue_wait_p99_s: number | null;
  ttft_p50_s: number | null;
  ttft_p99_s: number | null;
  completed: number;
  failed: number;
  /** Everything below: context for the numbers above. */
  details: {
    measured_requests: number;
    warmup_requests: number;
    burst_requests: { completed: number; warm: number };
    /** Timed-out requests included in the latency percentiles (with a lower-bound value). */
    timeouts_in_percentiles: number;
    queue_wait_mean_s: number | null;
    queue_wait_p90_s: number | null;
    /**
     * p99 over requests of (queue wait / nominal load time of the request's own model): the
     * p99 target read per request, where a 70B model's queue is weighed against a 70B load.
     */
    queue_wait_over_own_load_p99: number | null;
    ttft_mean_s: number | null;
    ttft_p90_s: number | null;
    /** Switchyard only: share of completed requests whose agent reported `started.cold: false`. */
    warm_share_agent_reported?: number | null;
    failures: Record<string, number>;
    loads_by_node: Record<string, number>;
    loads_by_model: Record<string, number>;
    /** The same counts including the warm-up, as the sims' counters have them. */
    loads_including_warmup: number;
    load_gpu_seconds_including_warmup: number;
    oom_including_warmup: number;
    evictions_total: number;
    unloads_total: number;
    sim_errors_total: number;
    sim_rejected_total: number;
    vram_high_water_gb: Record<string, number>;
    served_by_node: Record<string, number>;
    /** Load events seen in the timeline vs the sims' loads_total: they must agree. */
    timeline_check: string;
    wall_seconds: number;
  };
}

/** Nearest-rank percentile of an ascending array; null (JSON-friendly) when it is empty. */
export function percentileOrNull(sorted: readonly number[], p: number): number | null {
  return sorted.length === 0 ? null : percentileSorted(sorted, p);
}

function mean(values: readonly number[]): number | null {
  return values.length === 0 ? null : values.reduce((sum, value) => sum + value, 0) / values.length;
}

export interface SlotReference {
  queue_wait_p99_s: number | null;
  /** Measured requests that would wait longer than the p99 target's bar. */
  waits_over_target: number;
}

/**
 * The queue waits this run's requests would have had if every model were warm, always, on
 * one copy with `slotsPerCopy` slots, and no load ever ran: each model's requests, in arrival
 * order, take the first free slot and hold it for the service time they were measured to
 * need (first slot → finished). No policy that keeps one copy of a model when a burst for
 * it starts can do better, since a second copy takes a load time to appear.
 */
export function slotOnlyQueueWaits(records: readonly RequestRecord[], slotsPerCopy: number, toTraceS: (ms: number) => number, targetS: number): SlotReference {
  const byModel = new Map<string, RequestRecord[]>();
  for (const record of records) {
    if (record.outcome !== 'completed' || record.slot === undefined || record.finished === undefined) continue;
    const list = byModel.get(record.model);
    if (list) list.push(record);
    else byModel.set(record.model, [record]);
  }
  const waits: number[] = [];
  for (const list of byModel.values()) {
    list.sort((a, b) => a.submitted - b.submitted);
    const freeAt = Array.from({ length: slotsPerCopy }, () => Number.NEGATIVE_INFINITY);
    for (const record of list) {
      const slot = freeAt.indexOf(Math.min(...freeAt));
      const start = Math.max(record.submitted, freeAt[slot] as number);
      freeAt[slot] = start + Math.max(0, (record.finished as number) - (record.slot as number));
      if (!record.warmup) waits.push(toTraceS(start - record.submitted));
    }
  }
  waits.sort((a, b) => a - b);
  return { queue_wait_p99_s: round(percentileOrNull(waits, 99)), waits_over_target: waits.filter((wait) => wait > targetS).length };
}

interface LoadInterval {
  start: number;
  end: number;
}

/** Pairs each node's load_start/load_end events per model into intervals. */
export function loadIntervals(events: readonly SimEvent[], endOfRun: number): Map<string, LoadInterval[]> {
  const open = new Map<string, number>();
  const intervals = new Map<string, LoadInterval[]>();
  const add = (key: string, interval: LoadInterval) => {
    const list = intervals.get(key) ?? [];
    list.push(interval);
    intervals.set(key, list);
  };
  for (const event of events) {
    const key = `${event.node}|${event.model}`;
    if (event.kind === 'load_start') open.set(key, event.t);
    else if (event.kind === 'load_end') {
      const start = open.get(key);
      if (start !== undefined) add(key, { start, end: event.t });
      open.delete(key);
    } else if (event.kind === 'unload' && open.has(key)) {
      // Unloaded before its load finished (shutdown): it occupied the GPU until then.
      add(key, { start: open.get(key) as number, end: event.t });
      open.delete(key);
    }
  }
  for (const [key, start] of open) add(key, { start, end: endOfRun });
  return intervals;
}

function overlapMs(from: number, to: number, intervals: readonly LoadInterval[] | undefined): number {
  if (!intervals) return 0;
  let total = 0;
  for (const interval of intervals) total += Math.max(0, Math.min(to, interval.end) - Math.max(from, interval.start));
  return total;
}

const round = (value: number | null, digits = 3) => (value === null ? null : Number(value.toFixed(digits)));

export function computeMetrics(input: {
  replay: ReplayResult;
  events: readonly SimEvent[];
  stats: ReadonlyArray<{ node: string; stats: SimStats }>;
  catalog: readonly CatalogModel[];
  settings: SimSettings;
}): PolicyMetrics {
  const { replay, events, stats, settings } = input;
  const toTraceS = (ms: number) => ms / 1_000 / settings.time_scale;
  const nominalLoadS = loadSecondsByName(input.catalog, settings.load_bytes_per_s, settings.load_overhead_ms);
  const intervals = loadIntervals(events, replay.endedAt);

  const measured = replay.records.filter((record) => !record.warmup);
  const completed = measured.filter((record) => record.outcome === 'completed' && record.slot !== undefined && record.node !== undefined);
  const served = new Set(completed);
  const failedRecords = measured.filter((record) => !served.has(record));

  const queueWaits: number[] = [];
  const waitsOverOwnLoad: number[] = [];
  const ttfts: number[] = [];
  let warm = 0;
  let burstCompleted = 0;
  let burstWarm = 0;
  const servedByNode: Record<string, number> = {};
  for (const record of completed) {
    const slot = record.slot as number;
    const own = overlapMs(record.submitted, slot, intervals.get(`${record.node}|${record.model}`));
    const isWarm = own === 0;
    if (isWarm) warm++;
    if (record.burst) {
      burstCompleted++;
      if (isWarm) burstWarm++;
    }
    const waitS = toTraceS(Math.max(0, slot - record.submitted - own));
    queueWaits.push(waitS);
    waitsOverOwnLoad.push(waitS / nominalLoadS(record.model));
    if (record.first_token !== undefined) ttfts.push(toTraceS(Math.max(0, record.first_token - record.submitted)));
    servedByNode[record.node as string] = (servedByNode[record.node as string] ?? 0) + 1;
  }
  const timedOut = failedRecords.filter((record) => record.failure === 'timeout' && record.finished !== undefined);
  for (const record of timedOut) {
    const waited = toTraceS(Math.max(0, (record.finished as number) - record.submitted));
    queueWaits.push(waited);
    waitsOverOwnLoad.push(waited / nominalLoadS(record.model));
    ttfts.push(waited);
  }
  queueWaits.sort((a, b) => a - b);
  waitsOverOwnLoad.sort((a, b) => a - b);
  ttfts.sort((a, b) => a - b);

  const failures: Record<string, number> = {};
  for (const record of failedRecords) {
    const reason = (record.failure ?? 'unknown').slice(0, 120);
    failures[reason] = (failures[reason] ?? 0) + 1;
  }

  const starts = events.filter((event) => event.kind === 'load_start');
  const measuredStarts = starts.filter((event) => event.t >= replay.warmupEndAt);
  const loadsByNode: Record<string, number> = {};
  const loadsByModel: Record<string, number> = {};
  for (const event of measuredStarts) {
    loadsByNode[event.node] = (loadsByNode[event.node] ?? 0) + 1;
    loadsByModel[event.model] = (loadsByModel[event.model] ?? 0) + 1;
  }
  const gpuSeconds = (list: readonly SimEvent[]) => list.reduce((sum, event) => sum + nominalLoadS(event.model), 0);

  const simLoads = stats.reduce((sum, entry) => sum + entry.stats.loads_total, 0);
  const agentCold = completed.filter((record) => record.agent_cold !== undefined);

  return {
    warm_share: completed.length === 0 ? null : round(warm / completed.length, 4),
    loads: measuredStarts.length,
    load_gpu_seconds: round(gpuSeconds(measuredStarts), 1) as number,
    oom: measured.reduce((sum, record) => sum + record.oom, 0),
    queue_wait_p50_s: round(percentileOrNull(queueWaits, 50)),
    queue_wait_p99_s: round(percentileOrNull(queueWaits, 99)),
    ttft_p50_s: round(percentileOrNull(ttfts, 50)),
    ttft_p99_s: round(percentileOrNull(ttfts, 99)),
    completed: completed.length,
    failed: failedRecords.length,
    details: {
      measured_requests: measured.length,
      warmup_requests: replay.records.length - measured.length,
      burst_requests: { completed: burstCompleted, warm: burstWarm },
      timeouts_in_percentiles: timedOut.length,
      queue_wait_mean_s: round(mean(queueWaits)),
      queue_wait_p90_s: round(percentileOrNull(queueWaits, 90)),
      queue_wait_over_own_load_p99: round(percentileOrNull(waitsOverOwnLoad, 99)),
      ttft_mean_s: round(mean(ttfts)),
      ttft_p90_s: round(percentileOrNull(ttfts, 90)),
      ...(agentCold.length > 0 && {
        warm_share_agent_reported: round(agentCold.filter((record) => record.agent_cold === false).length / agentCold.length, 4),
      }),
      failures,
      loads_by_node: loadsByNode,
      loads_by_model: loadsByModel,
      loads_including_warmup: starts.length,
      load_gpu_seconds_including_warmup: round(gpuSeconds(starts), 1) as number,
      oom_including_warmup: replay.records.reduce((sum, record) => sum + record.oom, 0),
      evictions_total: stats.reduce((sum, entry) => sum + entry.stats.evictions_total, 0),
      unloads_total: stats.reduce((sum, entry) => sum + entry.stats.unloads_total, 0),
      sim_errors_total: stats.reduce((sum, entry) => sum + entry.stats.errors_total, 0),
      sim_rejected_total: stats.reduce((sum, entry) => sum + entry.stats.rejected_total, 0),
      vram_high_water_gb: Object.fromEntries(stats.map((entry) => [entry.node, round(entry.stats.vram_high_water_bytes / 1e9, 1) as number])),
      served_by_node: servedByNode,
      timeline_check: starts.length === simLoads ? 'ok' : `MISMATCH: ${starts.length} load events seen, sims report loads_total ${simLoads}`,
      wall_seconds: round((replay.endedAt - replay.startedAt) / 1_000, 1) as number,
    },
  };
}
