/** The issue's targets for Switchyard, judged on the numbers, and the printed table. */
import type { PolicyMetrics, SlotReference } from './metrics.js';
import type { PolicyName } from './policy.js';

/** The p99 queue-wait target's bar, in model loads. */
export const QUEUE_WAIT_TARGET_LOADS = 1.2;

export interface TargetResult {
  target: string;
  value: string;
  pass: boolean | null;
}

/**
 * - warm share within 3 points of the clairvoyant pooled cache (the 97 % first asked was beyond
 *   the hardware: no cache, even one that knows the future, gets there on this fleet);
 * - 0 OOM / refused loads;
 * - at least 50 % fewer GPU-seconds loading than round-robin;
 * - p99 queue wait within 1.5 × the always-warm slot reference; and, as first asked (kept
 *   for comparison), under 1.2 × one model load. "One model load" is the median nominal load
 *   time over the catalog (`oneLoadS`), fixed by the catalog and the load throughput, so the
 *   bar does not move with the policy being judged. The issue does not say whose load, so
 *   the same bar is also judged per request, against the load of the request's own model
 *   (docs/decisions.md): a 70B model's burst queues for its slots longer than a 1B model
 *   loads, whatever the placement — the slot reference beside it shows how much.
 */
/** Warm share may fall this far (a fraction) below the clairvoyant pooled cache's. */
export const WARM_SHARE_TOLERANCE = 0.03;
/** p99 queue wait may be this many times the always-warm slot reference's. */
export const P99_OVER_SLOTS = 1.5;

export function judgeTargets(
  policies: Partial<Record<PolicyName, PolicyMetrics>>,
  oneLoadS: number,
  references: { slots?: SlotReference; clairvoyantWarmShare?: number } = {},
): TargetResult[] {
  const sy = policies.switchyard;
  const rr = policies.round_robin;
  if (!sy) return [];
  const pct = (value: number | null) => (value === null ? 'n/a' : `${(value * 100).toFixed(1)} %`);
  const results: TargetResult[] = [
    // The goal as read since the placement issue ended (97 % was beyond the hardware): within
    // WARM_SHARE_TOLERANCE of what a clairvoyant pooled cache could serve warm on this trace.
    {
      target: `warm share within ${WARM_SHARE_TOLERANCE * 100} points of the clairvoyant pooled cache`,
      value: `${pct(sy.warm_share)}${references.clairvoyantWarmShare === undefined ? '' : ` (clairvoyant cache: ${pct(references.clairvoyantWarmShare)})`}`,
      pass: sy.warm_share === null || references.clairvoyantWarmShare === undefined ? null : sy.warm_share >= references.clairvoyantWarmShare - WARM_SHARE_TOLERANCE,
    },
    { target: 'OOM / refused loads = 0', value: String(sy.oom), pass: sy.oom === 0 },
  ];
  if (rr) {
    const saved = rr.load_gpu_seconds > 0 ? 1 - sy.load_gpu_seconds / rr.load_gpu_seconds : null;
    results.push({
      target: 'load GPU-seconds ≥ 50 % below round_robin',
      value: saved === null ? 'n/a' : `${sy.load_gpu_seconds} s vs ${rr.load_gpu_seconds} s (${(saved * 100).toFixed(1)} % less)`,
      pass: saved === null ? null : saved >= 0.5,
    });
  } else {
    results.push({ target: 'load GPU-seconds ≥ 50 % below round_robin', value: 'round_robin not run', pass: null });
  }
  const bar = QUEUE_WAIT_TARGET_LOADS * oneLoadS;
  const slotsAlone = references.slots?.queue_wait_p99_s;
  // The p99 goal as read now: within P99_OVER_SLOTS × the always-warm slot reference (a copy
  // of every model warm all day, its queue formed by slots alone). The absolute bar below is
  // kept for comparison with earlier runs.
  results.push({
    target: `p99 queue wait ≤ ${P99_OVER_SLOTS} × the always-warm slot reference`,
    value:
      sy.queue_wait_p99_s === null || slotsAlone == null
        ? 'n/a'
        : `${sy.queue_wait_p99_s.toFixed(1)} s vs ${(P99_OVER_SLOTS * slotsAlone).toFixed(1)} s (slots alone: ${slotsAlone.toFixed(1)} s)`,
    pass: sy.queue_wait_p99_s === null || slotsAlone == null ? null : sy.queue_wait_p99_s <= P99_OVER_SLOTS * slotsAlone,
  });
  results.push({
    target: `p99 queue wait < ${QUEUE_WAIT_TARGET_LOADS} × one load (${bar.toFixed(2)} s)`,
    value:
      sy.queue_wait_p99_s === null
        ? 'n/a'
        : `${sy.queue_wait_p99_s.toFixed(1)} s${slotsAlone == null ? '' : ` (one always-warm copy per model, slots alone: ${slotsAlone.toFixed(1)} s)`}`,
    pass: sy.queue_wait_p99_s === null ? null : sy.queue_wait_p99_s < bar,
  });
  const perOwnLoad = sy.details.queue_wait_over_own_load_p99;
  results.push({
    target: `p99 of queue wait ÷ own model’s load < ${QUEUE_WAIT_TARGET_LOADS}`,
    value: perOwnLoad === null ? 'n/a' : perOwnLoad.toFixed(2),
    pass: perOwnLoad === null ? null : perOwnLoad < QUEUE_WAIT_TARGET_LOADS,
  });
  return results;
}

const ROWS: Array<{ label: string; value: (m: PolicyMetrics) => string }> = [
  { label: 'warm share', value: (m) => (m.warm_share === null ? 'n/a' : `${(m.warm_share * 100).toFixed(1)} %`) },
  { label: 'loads', value: (m) => String(m.loads) },
  { label: 'load GPU-seconds', value: (m) => m.load_gpu_seconds.toFixed(1) },
  {
    label: 'OOM / refused loads',
    value: (m) => (m.details.oom_including_warmup > m.oom ? `${m.oom} (+${m.details.oom_including_warmup - m.oom} in warm-up)` : String(m.oom)),
  },
  { label: 'queue wait p50 (s)', value: (m) => fmt(m.queue_wait_p50_s) },
  { label: 'queue wait p99 (s)', value: (m) => fmt(m.queue_wait_p99_s) },
  { label: 'TTFT p50 (s)', value: (m) => fmt(m.ttft_p50_s) },
  { label: 'TTFT p99 (s)', value: (m) => fmt(m.ttft_p99_s) },
  { label: 'completed', value: (m) => String(m.completed) },
  { label: 'failed', value: (m) => String(m.failed) },
];

function fmt(value: number | null): string {
  return value === null ? 'n/a' : value.toFixed(2);
}

/** A Markdown table (readable in a terminal too): one row per metric, one column per policy. */
export function metricsTable(policies: Partial<Record<PolicyName, PolicyMetrics>>): string {
  const names = Object.keys(policies) as PolicyName[];
  const header = ['metric', ...names];
  const rows = ROWS.map((row) => [row.label, ...names.map((name) => row.value(policies[name] as PolicyMetrics))]);
  return markdownTable(header, rows);
}

export function targetsTable(results: readonly TargetResult[]): string {
  return markdownTable(
    ['Switchyard target', 'measured', 'result'],
    results.map((result) => [result.target, result.value, result.pass === null ? 'n/a' : result.pass ? 'PASS' : 'FAIL']),
  );
}

function markdownTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]) => `| ${cells.map((cell, column) => cell.padEnd(widths[column] as number)).join(' | ')} |`;
  return [line(header), `| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |`, ...rows.map(line)].join('\n');
}
