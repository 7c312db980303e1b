/**
 * `pnpm bench:throughput`: short jobs (a few tokens, the simulator at its fastest) completed
 * per second with API, agent, Redis and simulator on this machine, and Redis commands per
 * job from INFO commandstats. Each client submits (POST) and reads the stream to `done`,
 * as a real client does.
 * Target: ≥ 2,000 jobs/s, ≤ 8 Redis commands per job (excluding token events).
 */
import { Pool } from 'undici';
import { Redis } from 'ioredis';
import { switchyardFirstToken } from './clients.js';
import { sampleCommands } from './redis-monitor.js';
import { fmt, median, printTable, runBenchmark, startAgentProc, startApi, startRedis, startSim, waitForFleet, writeResult } from './harness.js';

const MODEL = 'qwen2.5:0.5b';
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 64);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 6_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
/** Commands one event append costs inside Redis: EVALSHA + INCR, XADD, PUBLISH, EXPIRE ×2. */
const COMMANDS_PER_EVENT = 6;

async function commandCalls(redis: Redis, field: 'calls' | 'usec' = 'calls'): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const calls = new Map<string, number>();
  const pattern = new RegExp(`^cmdstat_([^:]+):.*?\\b${field}=(\\d+)`, 'gm');
  for (const match of info.matchAll(pattern)) calls.set(match[1]!, Number(match[2]));
  return calls;
}

function delta(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const result = new Map<string, number>();
  for (const [name, calls] of after) {
    const d = calls - (before.get(name) ?? 0);
    if (d > 0) result.set(name, d);
  }
  return result;
}

async function run(apiUrl: string, control: Redis, monitorUrl?: string) {
  const pool = new Pool(apiUrl, { connections: CLIENTS * 2 });
  const payload = JSON.stringify({ model: MODEL, prompt: 'tiny', options: { num_predict: 3 } });
  let completed = 0;
  let tokens = 0;
  let failed = 0;
  const before = await commandCalls(control);
  const usecBefore = await commandCalls(control, 'usec');
  const started = performance.now();
  const deadline = started + DURATION_MS;
  // Optionally (BENCH_MONITOR=1) sample one second of commands mid-run, by sender.
  const sampled = monitorUrl
    ? new Promise<Awaited<ReturnType<typeof sampleCommands>>>((resolve) =>
        setTimeout(() => void sampleCommands(monitorUrl, 1_000).then(resolve), DURATION_MS / 2),
      )
    : undefined;
  const completedAtSample = { before: 0, after: 0 };
  if (monitorUrl) {
    setTimeout(() => (completedAtSample.before = completed), DURATION_MS / 2);
    setTimeout(() => (completedAtSample.after = completed), DURATION_MS / 2 + 1_000);
  }
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (performance.now() < deadline) {
        try {
          const result = await switchyardFirstToken(pool, payload, true);
          completed++;
          tokens += result.tokens;
        } catch {
          failed++;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const commands = delta(await commandCalls(control), before);
  const usec = delta(await commandCalls(control, 'usec'), usecBefore);
  const redisBusyShare = [...usec.values()].reduce((a, b) => a + b, 0) / 1e6 / seconds;
  commands.set('info', Math.max(0, (commands.get('info') ?? 0) - 1));
  await pool.close();
  const monitor = sampled ? await sampled : undefined;
  const sampledJobs = Math.max(1, completedAtSample.after - completedAtSample.before);
  const total = [...commands.values()].reduce((a, b) => a + b, 0);
  // Token events are what a longer answer multiplies; the per-job cost is the rest.
  const tokenEventCommands = tokens * COMMANDS_PER_EVENT;
  return {
    jobsPerS: completed / seconds,
    failed,
    tokenEventsPerJob: tokens / Math.max(1, completed),
    commandsPerJob: total / Math.max(1, completed),
    commandsPerJobExcludingTokens: (total - tokenEventCommands) / Math.max(1, completed),
    redisBusyShare,
    bySender: monitor?.slice(0, 30).map((row) => ({ ...row, per_job: Number((row.count / sampledJobs).toFixed(2)) })),
    // Commands clients sent (round trips' worth of work), as opposed to those scripts ran.
    topLevelPerJob: monitor ? monitor.filter((row) => row.source !== 'lua').reduce((sum, row) => sum + row.count, 0) / sampledJobs : undefined,
    topLevelBySender: monitor
      ?.filter((row) => row.source !== 'lua')
      .map((row) => ({ source: row.source, command: row.command, per_job: Number((row.count / sampledJobs).toFixed(2)) })),
    top: [...commands].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([name, calls]) => ({ name, per_job: Number((calls / Math.max(1, completed)).toFixed(2)) })),
    topUsec: [...usec].sort((a, b) => b[1] - a[1]).slice(0, 8).map(([name, us]) => ({ name, usec_per_job: Number((us / Math.max(1, completed)).toFixed(1)) })),
  };
}

runBenchmark(async () => {
  const redis = await startRedis();
  const prefix = `bench-throughput-${Date.now()}`;
  const control = new Redis(redis.url);
  const sim = await startSim({ timeScale: 0, numParallel: 256 });
  const api = await startApi(redis.url, prefix);
  startAgentProc(redis.url, prefix, sim.url, { AGENT_SLOTS: '256', BACKEND_NUM_PARALLEL: '256', PINNED_MODELS: MODEL });
  await waitForFleet(api.url, MODEL);
  const warm = new Pool(api.url, { connections: 4 });
  for (let i = 0; i < 100; i++) await switchyardFirstToken(warm, JSON.stringify({ model: MODEL, prompt: `warm ${i}`, options: { num_predict: 2 } }), true);
  await warm.close();
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await run(api.url, control, i === 0 && process.env.BENCH_MONITOR ? redis.url : undefined));
  control.disconnect();
  await redis.stop();

  printTable(
    `Throughput: ${CLIENTS} clients submitting 3-token jobs and reading each stream to done`,
    runs.map((r, i) => ({
      run: i + 1,
      jobs_per_s: fmt(r.jobsPerS, 0),
      failed: r.failed,
      token_events_per_job: fmt(r.tokenEventsPerJob),
      redis_cmds_per_job: fmt(r.commandsPerJob, 1),
      excluding_token_events: fmt(r.commandsPerJobExcludingTokens, 1),
      redis_busy: `${fmt(r.redisBusyShare * 100, 0)}%`,
    })),
  );
  printTable('Redis time per job, by command (last run; scripts include the commands they run)', runs.at(-1)!.topUsec.map((t) => ({ command: t.name, usec_per_job: t.usec_per_job })));
  const bySender = runs[0]!.bySender;
  const topLevel = runs[0]!.topLevelBySender;
  if (topLevel) {
    printTable(`Commands sent by clients per job (MONITOR; scripts' inner commands excluded): ${fmt(runs[0]!.topLevelPerJob ?? Number.NaN, 1)}`, topLevel);
  }
  if (bySender) printTable('Commands per job by sender (MONITOR, 1 s of run 1; "lua" = run inside scripts)', bySender.map((r) => ({ source: r.source, command: r.command, per_job: r.per_job })));
  printTable('Redis commands per job, most frequent (last run)', runs.at(-1)!.top.map((t) => ({ command: t.name, per_job: t.per_job })));
  const result = {
    clients: CLIENTS,
    jobs_per_s: Math.round(median(runs.map((r) => r.jobsPerS))),
    redis_commands_per_job: Number(fmt(median(runs.map((r) => r.commandsPerJobExcludingTokens)), 1)),
    redis_commands_per_job_including_token_events: Number(fmt(median(runs.map((r) => r.commandsPerJob)), 1)),
    commands_by_name: runs.at(-1)!.top,
    ...(runs[0]!.topLevelPerJob !== undefined && { client_commands_per_job: Number(fmt(runs[0]!.topLevelPerJob, 1)) }),
    target: { jobs_per_s: 2000, redis_commands_per_job: 8 },
  };
  process.stdout.write(`wrote ${writeResult('throughput', result)}\n`);
});
