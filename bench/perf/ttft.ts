/**
 * `pnpm bench:ttft`: time to first token added by Switchyard. The same request goes
 * straight to a gpu-sim and through Switchyard (API → Redis → agent → the same gpu-sim →
 * pub/sub → SSE), interleaved, at 1 and 50 concurrent streams.
 * Target: added p50 ≤ 2 ms, p99 ≤ 5 ms.
 */
import { Pool } from 'undici';
import { directFirstToken, switchyardFirstToken } from './clients.js';
import { fmt, printTable, runBenchmark, startAgentProc, startApi, startRedis, startSim, waitForFleet, writeResult } from './harness.js';
import { summarize } from '../common/stats.js';

const MODEL = 'qwen2.5:0.5b';
const PAIRS = Number(process.env.BENCH_PAIRS ?? 400);

async function measure(apiUrl: string, simUrl: string, concurrency: number) {
  const api = new Pool(apiUrl, { connections: concurrency * 2 });
  const sim = new Pool(simUrl, { connections: concurrency });
  const direct: number[] = [];
  const through: number[] = [];
  const diffs: number[] = [];
  const submit: number[] = [];
  const open: number[] = [];
  const queued: number[] = [];
  const agentTtft: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      while (next < PAIRS) {
        const i = next++;
        const prompt = `pair ${i} from ${worker}`;
        const options = { seed: i, num_predict: 8 };
        // Alternate which goes first so neither side always meets a warmer machine.
        const order = i % 2 === 0;
        const runDirect = () => directFirstToken(sim, JSON.stringify({ model: MODEL, prompt, options, keep_alive: -1 }));
        // Read to the end: the done event carries the agent's own timings for the breakdown.
        const runThrough = () => switchyardFirstToken(api, JSON.stringify({ model: MODEL, prompt, options }), true);
        const a = order ? await runDirect() : await runThrough();
        const b = order ? await runThrough() : await runDirect();
        const d = order ? (a as { ttftMs: number }).ttftMs : b.ttftMs;
        const t = order ? b.ttftMs : a.ttftMs;
        const timing = (order ? b : a) as Awaited<ReturnType<typeof runThrough>>;
        submit.push(timing.submitMs);
        open.push(timing.streamOpenMs);
        if (timing.agent) {
          queued.push(timing.agent.queued_ms);
          agentTtft.push(timing.agent.ttft_ms);
        }
        direct.push(d);
        through.push(t);
        diffs.push(t - d);
      }
    }),
  );
  await api.close();
  await sim.close();
  return {
    concurrency,
    direct: summarize(direct),
    through: summarize(through),
    added: summarize(diffs),
    breakdown: { submit: summarize(submit), stream_open: summarize(open), agent_queued: summarize(queued), agent_first_token: summarize(agentTtft) },
  };
}

runBenchmark(async () => {
  const redis = await startRedis();
  const prefix = `bench-ttft-${Date.now()}`;
  const sim = await startSim({ timeScale: 0, numParallel: 128 });
  const api = await startApi(redis.url, prefix);
  startAgentProc(redis.url, prefix, sim.url, { AGENT_SLOTS: '128', BACKEND_NUM_PARALLEL: '128', PINNED_MODELS: MODEL });
  await waitForFleet(api.url, MODEL);
  // Warm-up: the model loaded, connections open, code paths compiled.
  const warm = new Pool(api.url, { connections: 4 });
  for (let i = 0; i < 50; i++) await switchyardFirstToken(warm, JSON.stringify({ model: MODEL, prompt: `warm ${i}`, options: { num_predict: 2 } }));
  await warm.close();

  const results = [];
  for (const concurrency of [1, 50]) results.push(await measure(api.url, sim.url, concurrency));
  await redis.stop();

  printTable(
    `Time to first token: direct to gpu-sim vs through Switchyard (${PAIRS} interleaved pairs each)`,
    results.map((r) => ({
      streams: r.concurrency,
      direct_p50_ms: fmt(r.direct.p50),
      direct_p99_ms: fmt(r.direct.p99),
      switchyard_p50_ms: fmt(r.through.p50),
      switchyard_p99_ms: fmt(r.through.p99),
      added_p50_ms: fmt(r.added.p50),
      added_p99_ms: fmt(r.added.p99),
    })),
  );
  printTable(
    'Where the time goes through Switchyard (p50 / p99 ms from submission)',
    results.map((r) => ({
      streams: r.concurrency,
      post_answered: `${fmt(r.breakdown.submit.p50)} / ${fmt(r.breakdown.submit.p99)}`,
      sse_open: `${fmt(r.breakdown.stream_open.p50)} / ${fmt(r.breakdown.stream_open.p99)}`,
      agent_claimed: `${fmt(r.breakdown.agent_queued.p50)} / ${fmt(r.breakdown.agent_queued.p99)}`,
      agent_first_token: `${fmt(r.breakdown.agent_first_token.p50)} / ${fmt(r.breakdown.agent_first_token.p99)}`,
      client_first_token: `${fmt(r.through.p50)} / ${fmt(r.through.p99)}`,
    })),
  );
  const at50 = results.find((r) => r.concurrency === 50)!;
  const result = {
    concurrency: 50,
    added_p50_ms: Number(fmt(at50.added.p50)),
    added_p99_ms: Number(fmt(at50.added.p99)),
    by_concurrency: results,
    target: { added_p50_ms: 2, added_p99_ms: 5 },
  };
  process.stdout.write(`wrote ${writeResult('ttft', result)}\n`);
});
