/**
 * `pnpm bench:enqueue`: POST /v1/jobs accepted per second and latency, agents paused.
 * Target: ≥ 3,000/s, p99 ≤ 10 ms.
 *
 * Then the cost of `REDIS_WAIT_REPLICAS=1`, in the same run: a replica is attached to the
 * same Redis and the benchmark repeats with a replica and no WAIT (replication's own cost),
 * then with `REDIS_WAIT_REPLICAS=1` (each submit confirmed by the replica before its 202);
 * it reports each against the first. `BENCH_WAIT=0` skips these variants.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ReplicationBarrier } from '@switchyard/redis';
import { spawnRedisServer } from '@switchyard/testing/redis-server';
import { fmt, median, printTable, runBenchmark, startApi, startRedis, writeResult } from './harness.js';
import { summarize } from '../common/stats.js';
import { pausedFleet } from './synthetic-fleet.js';
import { driveEnqueue } from './enqueue-driver.js';

const MODEL = 'qwen2.5:0.5b';
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 5_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const WAIT_VARIANTS = process.env.BENCH_WAIT !== '0';
const BARRIER_ROUNDS = 2_000;

/**
 * What the WAIT itself adds to one submit, without the HTTP path's noise: a write (as the
 * job's) then the barrier's round (probe + WAIT 1), one at a time, from this process.
 */
async function barrierLatencies(redisUrl: string): Promise<number[]> {
  const writer = new Redis(redisUrl);
  const waiter = new Redis(redisUrl);
  const barrier = new ReplicationBarrier(waiter, 'bench-enqueue:replication-probe', 1, 1_000);
  const latencies: number[] = [];
  for (let i = 0; i < BARRIER_ROUNDS; i++) {
    await writer.set('bench-enqueue:barrier-write', String(i));
    const t0 = performance.now();
    const acked = await barrier.confirm();
    latencies.push(performance.now() - t0);
    if (acked < 1) throw new Error(`the replica did not confirm round ${i}`);
  }
  writer.disconnect();
  waiter.disconnect();
  return latencies;
}

const run = (apiUrl: string) => driveEnqueue(apiUrl, { model: MODEL, concurrency: CONCURRENCY, durationMs: DURATION_MS });

type Run = Awaited<ReturnType<typeof run>>;

/** One API configuration on its own prefix (its own paused fleet), warmed up. */
async function startVariant(control: Redis, redisUrl: string, label: string, env: Record<string, string> = {}) {
  const prefix = `bench-enqueue-${label}-${Date.now()}`;
  const fleet = pausedFleet(control, prefix, MODEL);
  // Limits out of the way: with agents paused every job stays queued, and this measures the
  // submit path itself (the admission script still runs every check).
  const unlimited = String(100_000_000);
  const api = await startApi(redisUrl, prefix, {
    QUEUE_DEPTH_LIMIT: unlimited,
    TENANT_IN_FLIGHT_LIMIT: unlimited,
    TENANT_MODEL_IN_FLIGHT_LIMIT: unlimited,
    GLOBAL_IN_FLIGHT_LIMIT: unlimited,
    ...env,
  });
  await run(api.url).catch(() => undefined); // warm-up: JIT, connections, queue creation
  return { label, api, fleet, runs: [] as Run[] };
}

function summary(runs: Run[]) {
  return {
    accepted_per_s: Math.round(median(runs.map((r) => r.acceptedPerS))),
    p50_ms: Number(fmt(median(runs.map((r) => summarize(r.latencies).p50)))),
    p99_ms: Number(fmt(median(runs.map((r) => summarize(r.latencies).p99)))),
  };
}

runBenchmark(async () => {
  const redis = await startRedis();
  const control = new Redis(redis.url);
  const variants = [await startVariant(control, redis.url, 'plain')];
  const cleanups: Array<() => Promise<void>> = [];
  let barrier: ReturnType<typeof summarize> | undefined;
  if (WAIT_VARIANTS) {
    // A second Redis with a replica, so the variants run interleaved (round after round, each
    // in turn) and a shared machine's drifting load falls on all of them alike.
    const replicated = await startRedis();
    const port = new URL(replicated.url).port;
    // `dir`: the replica's full sync writes an RDB there.
    const dir = mkdtempSync(join(tmpdir(), 'bench-replica-'));
    const replica = await spawnRedisServer(undefined, { settings: { replicaof: ['127.0.0.1', port], dir } });
    const replicaClient = new Redis(replica.url);
    while (!/master_link_status:up/.test(await replicaClient.info('replication'))) await new Promise((resolve) => setTimeout(resolve, 100));
    replicaClient.disconnect();
    const replicatedControl = new Redis(replicated.url);
    cleanups.push(async () => {
      replicatedControl.disconnect();
      await replica.stop();
      rmSync(dir, { recursive: true, force: true });
    });
    variants.push(await startVariant(replicatedControl, replicated.url, 'replica'));
    variants.push(await startVariant(replicatedControl, replicated.url, 'wait1', { REDIS_WAIT_REPLICAS: '1' }));
    cleanups.unshift(async () => {
      barrier = summarize(await barrierLatencies(replicated.url));
    });
  }
  for (let i = 0; i < RUNS; i++) for (const v of variants) v.runs.push(await run(v.api.url));
  for (const v of variants) {
    await v.api.stop();
    v.fleet.stop();
  }
  for (const cleanup of cleanups) await cleanup();
  control.disconnect();
  await redis.stop();

  const [plain, noWait, wait] = variants as [(typeof variants)[number], ...Array<(typeof variants)[number] | undefined>];
  const runs = plain.runs;
  const rows = runs.map((r, i) => {
    const s = summarize(r.latencies);
    return { run: i + 1, accepted_per_s: fmt(r.acceptedPerS, 0), p50_ms: fmt(s.p50), p99_ms: fmt(s.p99), refused: r.refused };
  });
  const base = summary(runs);
  const waitReplicas = noWait &&
    wait && {
      replica_no_wait: summary(noWait.runs),
      replica_wait_1: summary(wait.runs),
      refused_wait_1: wait.runs.reduce((sum, r) => sum + r.refused, 0),
      ratio_wait_1_to_replica: Number(fmt(summary(wait.runs).accepted_per_s / summary(noWait.runs).accepted_per_s)),
      ratio_wait_1_to_plain: Number(fmt(summary(wait.runs).accepted_per_s / base.accepted_per_s)),
      ...(barrier && { barrier_round: { rounds: BARRIER_ROUNDS, p50_ms: Number(fmt(barrier.p50, 3)), p99_ms: Number(fmt(barrier.p99, 3)) } }),
    };
  const result = {
    concurrency: CONCURRENCY,
    duration_ms: DURATION_MS,
    runs: RUNS,
    ...base,
    target: { accepted_per_s: 3000, p99_ms: 10 },
    ...(waitReplicas && { wait_replicas: waitReplicas }),
  };
  printTable(`Enqueue: POST /v1/jobs, ${CONCURRENCY} concurrent, agents paused`, rows);
  printTable('Median of runs', [{ accepted_per_s: result.accepted_per_s, p50_ms: result.p50_ms, p99_ms: result.p99_ms, target: '≥3000/s, p99 ≤10 ms' }]);
  if (waitReplicas) {
    printTable('REDIS_WAIT_REPLICAS cost (interleaved runs, medians)', [
      { variant: 'no replica', ...base, ratio: '1.00' },
      { variant: 'replica, no WAIT', ...waitReplicas.replica_no_wait, ratio: fmt(waitReplicas.replica_no_wait.accepted_per_s / base.accepted_per_s) },
      { variant: 'replica, REDIS_WAIT_REPLICAS=1', ...waitReplicas.replica_wait_1, ratio: fmt(waitReplicas.ratio_wait_1_to_plain) },
    ]);
    process.stdout.write(
      `REDIS_WAIT_REPLICAS=1 / replica without WAIT: ${fmt(waitReplicas.ratio_wait_1_to_replica)} of the accepted rate (${waitReplicas.refused_wait_1} refused)\n`,
    );
    const round = waitReplicas.barrier_round;
    if (round) process.stdout.write(`one barrier round (probe + WAIT 1) after a write, ${round.rounds} in a row: p50 ${round.p50_ms} ms, p99 ${round.p99_ms} ms\n`);
  }
  process.stdout.write(`wrote ${writeResult('enqueue', result)}\n`);
});
