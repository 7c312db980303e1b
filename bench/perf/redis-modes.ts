/**
 * `pnpm bench:redis-modes`: bench:enqueue and bench:relay, each on one Redis and then on a
 * 3-master Redis Cluster (`REDIS_CLUSTER_NODES`), in one run, with the cluster/single ratios.
 *
 * What it measures on one machine: what Cluster mode costs the API (slot routing, one
 * connection per master, sharded subscribers per master) at the same offered load. It cannot
 * show the cluster's gain: all shards share this machine's cores, so a cluster is not more
 * Redis CPU here than one server. On real hosts the relay's load is spread over the shards
 * (each job channel is heard from its slot's master) and the admission ledger stays one slot.
 * On a shared machine the rates and latencies move with everyone else's load; the CPU time
 * per job (API process, and all Redis servers together, from /proc) moves much less.
 */
import { Redis } from 'ioredis';
import { createRedis, type RedisConnection, type RedisNode } from '@switchyard/redis';
import { fmt, median, printTable, runBenchmark, startApi, startRedis, startRedisCluster, writeResult, type Proc } from './harness.js';
import { summarize } from '../common/stats.js';
import { driveEnqueue } from './enqueue-driver.js';
import { driveRelay } from './relay-driver.js';
import { pausedFleet } from './synthetic-fleet.js';
import { createSyntheticJobs } from './synthetic-jobs.js';
import { cpuMicros } from './proc-stat.js';
import { envNumber } from '../common/env.js';

const MODEL = 'qwen2.5:0.5b';
const CONCURRENCY = envNumber('BENCH_CONCURRENCY', 16);
const ENQUEUE_MS = envNumber('BENCH_DURATION_MS', 5_000);
const RUNS = envNumber('BENCH_RUNS', 3);
const STREAMS = envNumber('BENCH_STREAMS', 1000);
const TOKENS_PER_S_PER_STREAM = envNumber('BENCH_TOKENS_PER_S', 100);
const TOKENS_PER_EVENT = envNumber('BENCH_TOKENS_PER_EVENT', 4);
const RELAY_MS = envNumber('BENCH_RELAY_DURATION_MS', 8_000);
const UNLIMITED = String(100_000_000);

interface Target {
  mode: 'single' | 'cluster';
  /** The API's environment for it. */
  env: Record<string, string>;
  redisUrl: string;
  clusterNodes?: RedisNode[];
  /** The Redis server processes (one, or every master). */
  redisPids: number[];
  connect(): RedisConnection;
}

/** CPU time (µs) the API and the Redis servers spend while `work` runs. */
async function cpuOf<T>(api: Proc, target: Target, work: () => Promise<T>): Promise<{ result: T; apiUs: number; redisUs: number }> {
  const redisNow = () => target.redisPids.reduce((sum, pid) => sum + cpuMicros(pid), 0);
  const [api0, redis0] = [cpuMicros(api.child.pid!), redisNow()];
  const result = await work();
  return { result, apiUs: cpuMicros(api.child.pid!) - api0, redisUs: redisNow() - redis0 };
}

async function enqueueOn(target: Target) {
  const prefix = `bench-modes-enq-${target.mode}-${Date.now()}`;
  const control = target.connect();
  const fleet = pausedFleet(control, prefix, MODEL);
  const api = await startApi(target.redisUrl, prefix, {
    ...target.env,
    QUEUE_DEPTH_LIMIT: UNLIMITED,
    TENANT_IN_FLIGHT_LIMIT: UNLIMITED,
    TENANT_MODEL_IN_FLIGHT_LIMIT: UNLIMITED,
    GLOBAL_IN_FLIGHT_LIMIT: UNLIMITED,
  });
  const run = () => driveEnqueue(api.url, { model: MODEL, concurrency: CONCURRENCY, durationMs: ENQUEUE_MS });
  await run().catch(() => undefined); // warm-up: JIT, connections, queue creation
  const measured = await cpuOf(api, target, async () => {
    const runs = [];
    for (let i = 0; i < RUNS; i++) runs.push(await run());
    return runs;
  });
  const runs = measured.result;
  fleet.stop();
  await stop(api, control);
  const jobs = runs.reduce((sum, r) => sum + r.latencies.length, 0);
  return {
    accepted_per_s: Math.round(median(runs.map((r) => r.acceptedPerS))),
    p50_ms: Number(fmt(median(runs.map((r) => summarize(r.latencies).p50)))),
    p99_ms: Number(fmt(median(runs.map((r) => summarize(r.latencies).p99)))),
    refused: runs.reduce((sum, r) => sum + r.refused, 0),
    api_cpu_us_per_job: Math.round(measured.apiUs / jobs),
    redis_cpu_us_per_job: Math.round(measured.redisUs / jobs),
  };
}

async function relayOn(target: Target) {
  const prefix = `bench-modes-relay-${target.mode}-${Date.now()}`;
  const control = target.connect();
  const ids = await createSyntheticJobs(control, prefix, STREAMS);
  const api = await startApi(target.redisUrl, prefix, target.env);
  const {
    result: stats,
    apiUs,
    redisUs,
  } = await cpuOf(api, target, () =>
    driveRelay({
      apiUrl: api.url,
      redisUrl: target.redisUrl,
      ...(target.clusterNodes && { clusterNodes: target.clusterNodes }),
      prefix,
      jobIds: ids,
      eventsPerS: TOKENS_PER_S_PER_STREAM / TOKENS_PER_EVENT,
      tokensPerEvent: TOKENS_PER_EVENT,
      durationMs: RELAY_MS,
      producers: 2,
    }),
  );
  await stop(api, control);
  const delay = summarize(stats.delaysMs);
  return {
    tokens_per_s: Math.round(stats.tokens / stats.seconds),
    delay_p50_ms: Number(fmt(delay.p50)),
    delay_p99_ms: Number(fmt(delay.p99)),
    // Per event relayed (an event carries TOKENS_PER_EVENT tokens); Redis's includes the producers' writes.
    api_cpu_us_per_event: Number(fmt(apiUs / Math.max(1, stats.events), 1)),
    redis_cpu_us_per_event: Number(fmt(redisUs / Math.max(1, stats.events), 1)),
  };
}

async function stop(api: Proc, control: RedisConnection): Promise<void> {
  await api.stop();
  control.disconnect();
}

runBenchmark(async () => {
  const single = await startRedis();
  const cluster = await startRedisCluster(3);
  const targets: Target[] = [
    { mode: 'single', env: {}, redisUrl: single.url, redisPids: [single.child.pid!], connect: () => new Redis(single.url) },
    {
      mode: 'cluster',
      env: { REDIS_CLUSTER_NODES: cluster.nodesList },
      redisUrl: single.url,
      clusterNodes: cluster.nodes,
      redisPids: cluster.children.map((child) => child.pid!),
      // The control connection writes the synthetic jobs and heartbeats: cross-slot safe as the apps are.
      connect: () => createRedis({ clusterNodes: cluster.nodes }, 'worker'),
    },
  ];
  const results: Record<string, { enqueue: Awaited<ReturnType<typeof enqueueOn>>; relay: Awaited<ReturnType<typeof relayOn>> }> = {};
  for (const target of targets) results[target.mode] = { enqueue: await enqueueOn(target), relay: await relayOn(target) };

  const ratio = (a: number, b: number) => Number(fmt(a / b));
  const { single: one, cluster: three } = results as Record<'single' | 'cluster', (typeof results)[string]>;
  const rows = (['single', 'cluster'] as const).map((mode) => ({
    redis: mode === 'single' ? 'one server' : 'cluster, 3 masters',
    enqueue_per_s: results[mode]!.enqueue.accepted_per_s,
    enqueue_p99_ms: fmt(results[mode]!.enqueue.p99_ms),
    enqueue_api_us: results[mode]!.enqueue.api_cpu_us_per_job,
    enqueue_redis_us: results[mode]!.enqueue.redis_cpu_us_per_job,
    relay_tokens_per_s: results[mode]!.relay.tokens_per_s,
    relay_delay_p99_ms: fmt(results[mode]!.relay.delay_p99_ms),
    relay_api_us: results[mode]!.relay.api_cpu_us_per_event,
    relay_redis_us: results[mode]!.relay.redis_cpu_us_per_event,
  }));
  const ratios = {
    enqueue_per_s: ratio(three!.enqueue.accepted_per_s, one!.enqueue.accepted_per_s),
    enqueue_p99_ms: ratio(three!.enqueue.p99_ms, one!.enqueue.p99_ms),
    enqueue_api_cpu: ratio(three!.enqueue.api_cpu_us_per_job, one!.enqueue.api_cpu_us_per_job),
    enqueue_redis_cpu: ratio(three!.enqueue.redis_cpu_us_per_job, one!.enqueue.redis_cpu_us_per_job),
    relay_tokens_per_s: ratio(three!.relay.tokens_per_s, one!.relay.tokens_per_s),
    relay_delay_p99_ms: ratio(three!.relay.delay_p99_ms, one!.relay.delay_p99_ms),
    relay_api_cpu: ratio(three!.relay.api_cpu_us_per_event, one!.relay.api_cpu_us_per_event),
    relay_redis_cpu: ratio(three!.relay.redis_cpu_us_per_event, one!.relay.redis_cpu_us_per_event),
  };
  rows.push({
    redis: 'ratio cluster/one',
    enqueue_per_s: ratios.enqueue_per_s,
    enqueue_p99_ms: String(ratios.enqueue_p99_ms),
    enqueue_api_us: ratios.enqueue_api_cpu,
    enqueue_redis_us: ratios.enqueue_redis_cpu,
    relay_tokens_per_s: ratios.relay_tokens_per_s,
    relay_delay_p99_ms: String(ratios.relay_delay_p99_ms),
    relay_api_us: ratios.relay_api_cpu,
    relay_redis_us: ratios.relay_redis_cpu,
  });
  printTable(
    `Redis modes: enqueue (${CONCURRENCY} concurrent, agents paused, median of ${RUNS}) and relay (${STREAMS} SSE streams, ${STREAMS * TOKENS_PER_S_PER_STREAM} tokens/s offered)`,
    rows,
  );
  process.stdout.write('(*_us: CPU µs per accepted job, or per relayed event, of the API process and of all Redis servers together)\n');
  const result = {
    concurrency: CONCURRENCY,
    enqueue_duration_ms: ENQUEUE_MS,
    runs: RUNS,
    streams: STREAMS,
    offered_tokens_per_s: STREAMS * TOKENS_PER_S_PER_STREAM,
    relay_duration_ms: RELAY_MS,
    single: one,
    cluster: three,
    ratio_cluster_to_single: ratios,
  };
  process.stdout.write(`wrote ${writeResult('redis-modes', result)}\n`);
});
