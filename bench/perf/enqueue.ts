/**
 * `pnpm bench:enqueue`: POST /v1/jobs accepted per second and latency, agents paused.
 * Target: ≥ 3,000/s, p99 ≤ 10 ms.
 */
import { Redis } from 'ioredis';
import { fmt, median, printTable, runBenchmark, startApi, startRedis, writeResult } from './harness.js';
import { summarize } from '../common/stats.js';
import { pausedFleet } from './synthetic-fleet.js';
import { driveEnqueue } from './enqueue-driver.js';

const MODEL = 'qwen2.5:0.5b';
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 5_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const run = (apiUrl: string) => driveEnqueue(apiUrl, { model: MODEL, concurrency: CONCURRENCY, durationMs: DURATION_MS });

runBenchmark(async () => {
  const redis = await startRedis();
  const prefix = `bench-enqueue-${Date.now()}`;
  const control = new Redis(redis.url);
  const fleet = pausedFleet(control, prefix, MODEL);
  // Limits out of the way: with agents paused every job stays queued, and this measures the
  // submit path itself (the admission script still runs every check).
  const unlimited = String(100_000_000);
  const api = await startApi(redis.url, prefix, {
    QUEUE_DEPTH_LIMIT: unlimited,
    TENANT_IN_FLIGHT_LIMIT: unlimited,
    TENANT_MODEL_IN_FLIGHT_LIMIT: unlimited,
    GLOBAL_IN_FLIGHT_LIMIT: unlimited,
  });
  await run(api.url).catch(() => undefined); // warm-up: JIT, connections, queue creation
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await run(api.url));
  fleet.stop();
  control.disconnect();
  await redis.stop();

  const rows = runs.map((r, i) => {
    const s = summarize(r.latencies);
    return { run: i + 1, accepted_per_s: fmt(r.acceptedPerS, 0), p50_ms: fmt(s.p50), p99_ms: fmt(s.p99), refused: r.refused };
  });
  const result = {
    concurrency: CONCURRENCY,
    duration_ms: DURATION_MS,
    runs: RUNS,
    accepted_per_s: Math.round(median(runs.map((r) => r.acceptedPerS))),
    p50_ms: Number(fmt(median(runs.map((r) => summarize(r.latencies).p50)))),
    p99_ms: Number(fmt(median(runs.map((r) => summarize(r.latencies).p99)))),
    target: { accepted_per_s: 3000, p99_ms: 10 },
  };
  printTable(`Enqueue: POST /v1/jobs, ${CONCURRENCY} concurrent, agents paused`, rows);
  printTable('Median of runs', [{ accepted_per_s: result.accepted_per_s, p50_ms: result.p50_ms, p99_ms: result.p99_ms, target: '≥3000/s, p99 ≤10 ms' }]);
  process.stdout.write(`wrote ${writeResult('enqueue', result)}\n`);
});
