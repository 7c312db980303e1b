/**
 * `pnpm bench:embed`: embedding requests through Switchyard, batched and unbatched, and the
 * broker's overhead over the backend alone.
 *
 * One Redis, one API, one gpu-sim (time scale 1: its embedding time model is what a batch
 * costs, see SIM_TIME_MODEL), and one agent per phase:
 * - **64 concurrent** single-input requests (`POST /api/embed` through the broker), first with
 *   the agent's batching off (`EMBED_BATCH_MAX_INPUTS=1`: one backend call per request), then
 *   on (the default): inputs/s, p50/p99 latency, backend calls and the mean batch size
 *   (read from the sim's counters).
 * - **One at a time**, the same request straight to the sim and through the broker,
 *   interleaved: the added latency (p50, p99).
 * Targets (issue 14): batched ≥ 3× the unbatched inputs/s with p99 ≤ 1.5× unbatched; the
 * broker adds ≤ 2 ms p50 one at a time.
 */
import { Pool } from 'undici';
import { fmt, printTable, runBenchmark, startAgentProc, startApi, startRedis, startSim, waitForFleet, writeResult, type Proc } from '../perf/harness.js';
import { summarize, type Summary } from '../common/stats.js';
import { CpuMeter } from '../perf/proc-stat.js';

const MODEL = process.env.BENCH_EMBED_MODEL ?? 'nomic-embed-text:latest';
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
const PAIRS = Number(process.env.BENCH_PAIRS ?? 300);

/** The simulator's embedding time model, as configured by the flags below (and stated in the results). */
const SIM_TIME_MODEL = { call_ms: Number(process.env.BENCH_EMBED_CALL_MS ?? 10), per_input_ms: Number(process.env.BENCH_EMBED_INPUT_MS ?? 0.3) };
const SIM_FLAGS = ['--embed-call-ms', String(SIM_TIME_MODEL.call_ms), '--embed-input-ms', String(SIM_TIME_MODEL.per_input_ms)];

async function embed(pool: Pool, text: string): Promise<number> {
  const started = performance.now();
  const response = await pool.request({
    method: 'POST',
    path: '/api/embed',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, input: text }),
  });
  const body = (await response.body.json()) as { embeddings?: number[][]; error?: string };
  if (response.statusCode !== 200 || body.embeddings?.length !== 1) throw new Error(`embed answered ${response.statusCode}: ${JSON.stringify(body).slice(0, 200)}`);
  return performance.now() - started;
}

/** What the sim counted for embeddings: backend calls and inputs served. */
async function simCounters(simUrl: string): Promise<{ calls: number; inputs: number }> {
  const stats = (await fetch(`${simUrl}/sim/stats`).then((r) => r.json())) as { embed?: { calls?: number; inputs?: number } };
  return { calls: stats.embed?.calls ?? Number.NaN, inputs: stats.embed?.inputs ?? Number.NaN };
}

interface LoadResult {
  mode: string;
  inputs_per_s: number;
  latency_ms: Summary;
  backend_calls: number;
  mean_batch: number;
  cpu_us_per_request: Record<string, number>;
}

/** The processes whose CPU time per request the benchmark reports (see cpuPerRequest). */
type Pids = Record<'api' | 'agent' | 'sim' | 'redis', number>;

/** CPU µs per request of each process over a phase of `requests` requests (from /proc). */
function cpuPerRequest(meter: CpuMeter, requests: number): Record<string, number> {
  const used = meter.stop();
  return Object.fromEntries((['api', 'agent', 'sim', 'redis'] as const).map((name) => [name, (used[name] ?? Number.NaN) / requests]));
}

async function concurrentLoad(mode: string, apiUrl: string, simUrl: string, pids: Pids): Promise<LoadResult> {
  const pool = new Pool(apiUrl, { connections: CONCURRENCY });
  // Warm-up: the model loaded on the agent's node, connections open.
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => embed(pool, `warm ${mode} ${i}`)));
  const before = await simCounters(simUrl);
  const latencies: number[] = [];
  let next = 0;
  const meter = new CpuMeter(pids, false);
  meter.start();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) {
        const i = next++;
        latencies.push(await embed(pool, `${mode} request ${i}: the quick brown fox jumps over the lazy dog`));
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu_us_per_request = cpuPerRequest(meter, REQUESTS);
  const after = await simCounters(simUrl);
  await pool.close();
  const calls = after.calls - before.calls;
  return {
    mode,
    inputs_per_s: REQUESTS / seconds,
    latency_ms: summarize(latencies),
    backend_calls: calls,
    mean_batch: (after.inputs - before.inputs) / calls,
    cpu_us_per_request,
  };
}

async function oneAtATime(apiUrl: string, simUrl: string, pids: Pids) {
  const api = new Pool(apiUrl, { connections: 1 });
  const sim = new Pool(simUrl, { connections: 1 });
  const direct: number[] = [];
  const through: number[] = [];
  const added: number[] = [];
  // Over pairs: the broker's processes do nothing for the direct half, so this is their
  // cost per request through Switchyard (the sim's includes both halves).
  // Warm-up: the fresh agent's first requests (connections, JIT) are not the steady cost.
  for (let i = 0; i < 20; i++) await embed(api, `warm ${i}`);
  const meter = new CpuMeter(pids, false);
  meter.start();
  for (let i = 0; i < PAIRS; i++) {
    const text = `pair ${i}`;
    // Alternate which goes first so neither side always meets a warmer machine.
    let d: number;
    let t: number;
    if (i % 2 === 0) {
      d = await embed(sim, text);
      t = await embed(api, text);
    } else {
      t = await embed(api, text);
      d = await embed(sim, text);
    }
    direct.push(d);
    through.push(t);
    added.push(t - d);
  }
  const cpu_us_per_request = cpuPerRequest(meter, PAIRS);
  await api.close();
  await sim.close();
  return { direct: summarize(direct), through: summarize(through), added: summarize(added), cpu_us_per_request };
}

async function withAgent<T>(redisUrl: string, prefix: string, simUrl: string, apiUrl: string, env: Record<string, string>, run: (agentPid: number) => Promise<T>): Promise<T> {
  const agent: Proc = startAgentProc(redisUrl, prefix, simUrl, { PINNED_MODELS: MODEL, ...env });
  try {
    await waitForFleet(apiUrl, MODEL);
    return await run(agent.child.pid!);
  } finally {
    await agent.stop();
  }
}

runBenchmark(async () => {
  const redis = await startRedis();
  const prefix = `bench-embed-${Date.now()}`;
  const sim = await startSim({ timeScale: 1, numParallel: 64, extra: SIM_FLAGS });
  const api = await startApi(redis.url, prefix);

  const pids = (agent: number): Pids => ({ api: api.child.pid!, agent, sim: sim.child.pid!, redis: redis.child.pid! });
  const unbatched = await withAgent(redis.url, prefix, sim.url, api.url, { EMBED_BATCH_MAX_INPUTS: '1' }, (agent) =>
    concurrentLoad('unbatched', api.url, sim.url, pids(agent)),
  );
  const batched = await withAgent(redis.url, prefix, sim.url, api.url, {}, (agent) => concurrentLoad('batched', api.url, sim.url, pids(agent)));
  const single = await withAgent(redis.url, prefix, sim.url, api.url, {}, (agent) => oneAtATime(api.url, sim.url, pids(agent)));
  await redis.stop();

  printTable(
    `${CONCURRENCY} concurrent single-input requests, ${REQUESTS} each (sim: ${SIM_TIME_MODEL.call_ms} ms per call + ${SIM_TIME_MODEL.per_input_ms} ms per input, one call at a time)`,
    [unbatched, batched].map((r) => ({
      mode: r.mode,
      'inputs/s': fmt(r.inputs_per_s, 0),
      'p50 ms': fmt(r.latency_ms.p50, 1),
      'p99 ms': fmt(r.latency_ms.p99, 1),
      'backend calls': r.backend_calls,
      'mean batch': fmt(r.mean_batch, 1),
    })),
  );
  const speedup = batched.inputs_per_s / unbatched.inputs_per_s;
  const p99Ratio = batched.latency_ms.p99 / unbatched.latency_ms.p99;
  printTable(`one request at a time, ${PAIRS} pairs (ms)`, [
    { path: 'backend alone', p50: fmt(single.direct.p50), p99: fmt(single.direct.p99) },
    { path: 'through Switchyard', p50: fmt(single.through.p50), p99: fmt(single.through.p99) },
    { path: 'added', p50: fmt(single.added.p50), p99: fmt(single.added.p99) },
  ]);
  // The same work costs far more CPU one request at a time than under load (nothing is
  // amortised and every process wakes cold), and on a slow machine that, not waiting, is
  // most of the added latency: shown per process so the gap explains itself.
  const cpuRow = (phase: string, cpu: Record<string, number>) => ({
    phase,
    api: fmt(cpu.api ?? Number.NaN, 0),
    agent: fmt(cpu.agent ?? Number.NaN, 0),
    redis: fmt(cpu.redis ?? Number.NaN, 0),
    sim: fmt(cpu.sim ?? Number.NaN, 0),
  });
  printTable('CPU µs per request (from /proc; the sim row one at a time counts both paths)', [
    cpuRow(`${CONCURRENCY} concurrent, unbatched`, unbatched.cpu_us_per_request),
    cpuRow(`${CONCURRENCY} concurrent, batched`, batched.cpu_us_per_request),
    cpuRow('one at a time', single.cpu_us_per_request),
  ]);
  const verdicts = [
    { target: 'batched inputs/s ≥ 3× unbatched', value: `${fmt(speedup)}×`, met: speedup >= 3 ? 'yes' : 'NO' },
    { target: 'batched p99 ≤ 1.5× unbatched', value: `${fmt(p99Ratio)}×`, met: p99Ratio <= 1.5 ? 'yes' : 'NO' },
    { target: 'added p50 ≤ 2 ms one at a time', value: `${fmt(single.added.p50)} ms`, met: single.added.p50 <= 2 ? 'yes' : 'NO' },
  ];
  printTable('targets', verdicts);
  const path = writeResult('embed', {
    model: MODEL,
    concurrency: CONCURRENCY,
    requests: REQUESTS,
    pairs: PAIRS,
    sim_time_model: SIM_TIME_MODEL,
    unbatched,
    batched,
    single,
    speedup,
    p99_ratio: p99Ratio,
    verdicts,
  });
  process.stdout.write(`\nraw results: ${path}\n`);
});
