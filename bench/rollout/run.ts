/**
 * `pnpm bench:rollout`: a fleet of gpu-sims under steady load rolls a model to a new build.
 *
 * One Redis, one API, `BENCH_ROLLOUT_NODES` (default 4) gpu-sims each with its agent, all
 * holding the sample `llama3.2:3b` build. An open-loop generator submits jobs at a fixed rate
 * (`BENCH_ROLLOUT_RATE` per second, each streaming `BENCH_ROLLOUT_TOKENS` tokens) over the
 * native wire and follows each job's event stream. After a `before` phase of steady traffic,
 * the catalog entry is given the registry's newer digest; the rollout runs under the same
 * traffic until the API stamps it finished (no node holds the old build). Reported: time to
 * roll out, requests during it and how many failed or were refused, and p50/p99 of queue wait
 * and TTFT (the job's own timings, from submit) during vs before, as ratios in one run.
 * Target (issue 15): failed 0, p99 queue wait and TTFT during ≤ 1.2× before.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import type { StreamEvent } from '@switchyard/protocol';
import { consumeSse } from '../common/sse.js';
import { summarize, type Summary } from '../common/stats.js';
import { fmt, machine, printTable, runBenchmark, startAgentProc, startApi, startRedis, startSim, waitForFleet, writeResult } from '../perf/harness.js';
import { envNumber } from '../common/env.js';

const MODEL = 'llama3.2:3b';
/** The newer build the sample registry serves for the model (apps/gpu-sim/src/sample-catalog.ts). */
const NEW_DIGEST = '2b1b2c3d4e5f60718a1b2c3d4e5f60718a1b2c3d4e5f60718a1b2c3d4e5f6071';
const NODES = envNumber('BENCH_ROLLOUT_NODES', 4);
const RATE = envNumber('BENCH_ROLLOUT_RATE', 8);
const TOKENS = envNumber('BENCH_ROLLOUT_TOKENS', 16);
const BEFORE_S = envNumber('BENCH_ROLLOUT_BEFORE_S', 30, { orEqual: true });
/** Simulated download speed: the 2 GB build takes about 10 s to pull at the default. */
const PULL_BYTES_PER_S = envNumber('BENCH_ROLLOUT_PULL_BYTES_PER_S', 2e8);
const TIMEOUT_S = envNumber('BENCH_ROLLOUT_TIMEOUT_S', 300);

interface JobOutcome {
  submittedAt: number;
  status: number;
  ended?: 'done' | 'error';
  errorCode?: string;
  queuedMs?: number;
  loadMs?: number;
  ttftMs?: number;
}

/** Submits one job and follows its stream to the end; never throws (an outcome records what happened). */
async function runJob(pool: Pool, index: number): Promise<JobOutcome> {
  const outcome: JobOutcome = { submittedAt: Date.now(), status: 0 };
  try {
    const submitted = await pool.request({
      method: 'POST',
      path: '/v1/jobs',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: `rollout bench ${index}`, options: { num_predict: TOKENS } }),
    });
    outcome.status = submitted.statusCode;
    const body = (await submitted.body.json()) as { id?: string; error?: { code: string } };
    if (submitted.statusCode !== 202 || !body.id) {
      outcome.errorCode = body.error?.code ?? `http_${submitted.statusCode}`;
      return outcome;
    }
    const events = await pool.request({ method: 'GET', path: `/v1/jobs/${body.id}/events`, headers: { accept: 'text/event-stream' } });
    await consumeSse(events.body, (event: StreamEvent) => {
      if (event.type === 'done') {
        outcome.ended = 'done';
        outcome.queuedMs = event.timings.queued_ms;
        outcome.ttftMs = event.timings.ttft_ms;
        outcome.loadMs = event.timings.load_ms;
        return true;
      }
      if (event.type === 'error') {
        outcome.ended = 'error';
        outcome.errorCode = event.code;
        return true;
      }
      return false;
    });
  } catch (error) {
    outcome.errorCode = error instanceof Error ? error.message : String(error);
  }
  return outcome;
}

async function admin(apiUrl: string, method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${apiUrl}${path}`, {
    method,
    ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (response.status >= 400) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return text === '' ? undefined : JSON.parse(text);
}

interface PhaseFigures {
  requests: number;
  completed: number;
  failed: number;
  refused: number;
  queue_wait_ms: Summary;
  ttft_ms: Summary;
}

function figures(outcomes: JobOutcome[]): PhaseFigures {
  const done = outcomes.filter((o) => o.ended === 'done');
  return {
    requests: outcomes.length,
    completed: done.length,
    failed: outcomes.filter((o) => o.status === 202 && o.ended !== 'done').length,
    refused: outcomes.filter((o) => o.status !== 202).length,
    queue_wait_ms: summarize(done.map((o) => o.queuedMs ?? 0)),
    ttft_ms: summarize(done.map((o) => o.ttftMs ?? 0)),
  };
}

async function main(): Promise<void> {
  const redis = await startRedis();
  const prefix = `bench-rollout-${Date.now()}`;
  const sims = await Promise.all(Array.from({ length: NODES }, () => startSim({ timeScale: 1, numParallel: 8, extra: ['--pull-bytes-per-s', String(PULL_BYTES_PER_S)] })));
  const api = await startApi(redis.url, prefix);
  for (const sim of sims) {
    startAgentProc(redis.url, prefix, sim.url, { CATALOG_RECONCILE_MS: '1000', ROLLOUT_COPY_GRACE_MS: '3000', AGENT_SLOTS: '8', BACKEND_NUM_PARALLEL: '8' });
  }
  await waitForFleet(api.url, MODEL, NODES, 60_000);
  const oldDigest = ((await admin(api.url, 'GET', `/admin/models/${encodeURIComponent(MODEL)}`)) as { digests: Record<string, string[]> }).digests;
  const [fromDigest] = Object.keys(oldDigest);
  if (!fromDigest) throw new Error(`no node holds ${MODEL}`);
  await admin(api.url, 'PUT', `/admin/models/${encodeURIComponent(MODEL)}`, { digest: fromDigest });

  const pool = new Pool(api.url, { connections: 256 });
  const outcomes: JobOutcome[] = [];
  const running: Array<Promise<void>> = [];
  let stop = false;
  let index = 0;
  const generator = (async () => {
    const started = performance.now();
    while (!stop) {
      const due = started + (index * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const i = index++;
      running.push(runJob(pool, i).then((outcome) => void outcomes.push(outcome)));
    }
  })();

  // Warm-up: every node loads the model; then the `before` phase.
  await sleep(10_000);
  const beforeStart = Date.now();
  await sleep(BEFORE_S * 1000);
  const rolloutStart = Date.now();
  await admin(api.url, 'PUT', `/admin/models/${encodeURIComponent(MODEL)}`, { digest: NEW_DIGEST });
  let view: { state: string; finished_at?: number; on_to: string[] } | undefined;
  const deadline = rolloutStart + TIMEOUT_S * 1000;
  const states: Array<{ at_s: number; state: string }> = [];
  while (Date.now() < deadline) {
    view = await admin(api.url, 'GET', `/admin/models/${encodeURIComponent(MODEL)}/rollout`);
    if (states.at(-1)?.state !== view!.state) states.push({ at_s: (Date.now() - rolloutStart) / 1000, state: view!.state });
    if (view!.finished_at !== undefined) break;
    await sleep(250);
  }
  const rolloutEnd = view?.finished_at ?? Date.now();
  stop = true;
  await generator;
  await Promise.all(running);
  await pool.close();

  const before = figures(outcomes.filter((o) => o.submittedAt >= beforeStart && o.submittedAt < rolloutStart));
  const during = figures(outcomes.filter((o) => o.submittedAt >= rolloutStart && o.submittedAt <= rolloutEnd));
  // The slowest first tokens during the rollout, and what they waited for.
  const slowest = outcomes
    .filter((o) => o.submittedAt >= rolloutStart && o.submittedAt <= rolloutEnd && o.ended === 'done')
    .sort((a, b) => (b.ttftMs ?? 0) - (a.ttftMs ?? 0))
    .slice(0, 5)
    .map((o) => ({ at_s: (o.submittedAt - rolloutStart) / 1000, ttft_ms: o.ttftMs, queued_ms: o.queuedMs, load_ms: o.loadMs }));
  const ratio = (a: number, b: number) => (b > 0 ? a / b : Number.NaN);
  const result = {
    benchmark: 'rollout',
    machine: machine(),
    settings: { nodes: NODES, rate_per_s: RATE, tokens: TOKENS, before_s: BEFORE_S, pull_bytes_per_s: PULL_BYTES_PER_S, sim_time_scale: 1 },
    slowest_during: slowest,
    rollout: { finished: view?.finished_at !== undefined, time_s: (rolloutEnd - rolloutStart) / 1000, states, nodes_on_new: view?.on_to.length ?? 0 },
    before,
    during,
    ratios: {
      p99_queue_wait: ratio(during.queue_wait_ms.p99, before.queue_wait_ms.p99),
      p99_ttft: ratio(during.ttft_ms.p99, before.ttft_ms.p99),
      p50_ttft: ratio(during.ttft_ms.p50, before.ttft_ms.p50),
    },
  };
  printTable('rollout under steady load', [
    {
      phase: 'before',
      requests: before.requests,
      failed: before.failed,
      refused: before.refused,
      'wait p50': fmt(before.queue_wait_ms.p50, 1),
      'wait p99': fmt(before.queue_wait_ms.p99, 1),
      'ttft p50': fmt(before.ttft_ms.p50, 1),
      'ttft p99': fmt(before.ttft_ms.p99, 1),
    },
    {
      phase: 'during',
      requests: during.requests,
      failed: during.failed,
      refused: during.refused,
      'wait p50': fmt(during.queue_wait_ms.p50, 1),
      'wait p99': fmt(during.queue_wait_ms.p99, 1),
      'ttft p50': fmt(during.ttft_ms.p50, 1),
      'ttft p99': fmt(during.ttft_ms.p99, 1),
    },
  ]);
  console.log(
    `rollout to ${NEW_DIGEST.slice(0, 12)}: ${result.rollout.finished ? 'finished' : 'NOT finished'} in ${fmt(result.rollout.time_s, 1)} s; states ${states.map((s) => `${s.state}@${fmt(s.at_s, 1)}s`).join(' → ')}`,
  );
  console.log(
    `during/before: p99 queue wait ${fmt(result.ratios.p99_queue_wait)}×, p99 TTFT ${fmt(result.ratios.p99_ttft)}× (target ≤ 1.2×); failed during ${during.failed} (target 0), refused ${during.refused}`,
  );
  console.log(`slowest first tokens during: ${slowest.map((s) => `${s.ttft_ms} ms at ${fmt(s.at_s, 1)} s (queued ${s.queued_ms}, load ${s.load_ms})`).join('; ')}`);
  console.log(`wrote ${writeResult('rollout', result)}`);
}

runBenchmark(main);
