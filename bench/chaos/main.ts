/**
 * `pnpm bench:chaos` (issue 13, point 8): what survives a scheduled series of faults, on
 * loopback, in about five minutes. A private redis-server with the append-only file, three
 * gpu-sims and three agents, two API replicas, each its own process; streamed clients (SSE,
 * reconnecting with Last-Event-ID on any break) and detached ones (detach: true, polled with
 * GET) run throughout, while the schedule kills, stops and restarts parts of the system at
 * known moments. Then: accepted jobs, lost, stuck, seq gaps and duplicates, duplicated text,
 * text against GET's result and against the simulator's own answer, failover times, jobs
 * failed by cause, 5xx by phase, Redis outages (503 within 100 ms? first 2xx after?), each
 * beside its target. Measured as the product is: nothing is tuned for the run.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { SAMPLE_CATALOG } from '@switchyard/gpu-sim';
import { redisKeys } from '@switchyard/protocol';
import { freePort } from '@switchyard/testing/redis-server';
import { mulberry32, percentile } from '../common/stats.js';
import { fmt, printTable, ROOT, writeResult } from '../perf/harness.js';
import { call, ClientContext, follow, jobInput, poll, probeSubmit, readRecord, submit, TERMINAL, type HttpRecord, type Job, type JobSpec } from './clients.js';
import { killEverything, LogFiles, nodeApp, redisService, redisShutdown, Service, tempDir, waitForHttp } from './procs.js';
import { compareText } from './transcript.js';

const USAGE = `Usage: pnpm bench:chaos [-- --logs <dir>] [--help]

  --logs <dir>   keep every process's log there (default: a temp dir, removed at the end)

Environment: BENCH_CHAOS_STREAMS (streamed clients, 8), BENCH_CHAOS_DETACHED (detached
clients, 2), BENCH_CHAOS_TIMEOUT_MS (hard limit of the whole run, 350000).
`;

const MODEL = 'qwen2.5:0.5b';
const AGENTS = 3;
const SLOTS = 4;
const TOKENS_PER_S = 40;
/** num_predict of each job, uniform in this range: 1.5–4 s of tokens at TOKENS_PER_S. */
const NUM_PREDICT: [number, number] = [60, 160];
const STREAM_CLIENTS = Number(process.env.BENCH_CHAOS_STREAMS ?? 8);
const DETACHED_CLIENTS = Number(process.env.BENCH_CHAOS_DETACHED ?? 2);
/** Submissions stop this long after the load starts; then the grace. */
const LOAD_MS = 275_000;
const GRACE_MS = 45_000;
const HARD_TIMEOUT_MS = Number(process.env.BENCH_CHAOS_TIMEOUT_MS ?? 350_000);
const STUCK_MS = 30_000;
const PROBE_GET_MS = 50;
const PROBE_POST_MS = 100;

type FaultKind = 'agent_kill' | 'sim_kill' | 'api_kill' | 'agent_stop' | 'redis_shutdown' | 'redis_kill' | 'sim_hang';

interface Step {
  /** ms after the load started. */
  at: number;
  kind: FaultKind;
  target: string;
  /** The restart (or SIGCONT) comes this long after the fault. */
  restoreAfterMs: number;
  what: string;
}

/** The faults, at known moments (not random), 25–30 s apart so each one's effects can be told apart. */
const SCHEDULE: Step[] = [
  { at: 15_000, kind: 'agent_kill', target: 'agent-1', restoreAfterMs: 5_000, what: 'kill -9 agent-1; restarted 5 s later (same AGENT_ID)' },
  { at: 40_000, kind: 'sim_kill', target: 'sim-2', restoreAfterMs: 5_000, what: "kill -9 agent-2's gpu-sim; restarted 5 s later on its port" },
  { at: 65_000, kind: 'api_kill', target: 'api-1', restoreAfterMs: 5_000, what: 'SIGKILL API replica 1; restarted 5 s later on its port' },
  { at: 90_000, kind: 'agent_stop', target: 'agent-3', restoreAfterMs: 6_000, what: 'SIGSTOP agent-3 for 6 s, then SIGCONT' },
  { at: 115_000, kind: 'redis_shutdown', target: 'redis', restoreAfterMs: 5_000, what: 'Redis SHUTDOWN; restarted 5 s later (same port, dir, AOF)' },
  { at: 145_000, kind: 'redis_kill', target: 'redis', restoreAfterMs: 5_000, what: 'kill -9 Redis; restarted 5 s later (same port, dir, AOF)' },
  { at: 175_000, kind: 'sim_hang', target: 'sim-1', restoreAfterMs: 40_000, what: "SIGSTOP agent-1's gpu-sim for 40 s (a backend that hangs without closing), then SIGCONT" },
  // The agent faults once more, on other agents: more failover samples.
  { at: 225_000, kind: 'agent_kill', target: 'agent-2', restoreAfterMs: 5_000, what: 'kill -9 agent-2; restarted 5 s later (same AGENT_ID)' },
  { at: 250_000, kind: 'agent_stop', target: 'agent-1', restoreAfterMs: 6_000, what: 'SIGSTOP agent-1 for 6 s, then SIGCONT' },
];

const TARGETS = {
  lost: 0,
  stuck: 0,
  seq_gaps_or_dups: 0,
  duplicated_text: 0,
  failed_by_survivable_fault: 0,
  failover_p99_ms: 5_000,
  redis_away_503_within_ms: 100,
  first_2xx_after_redis_ms: 2_000,
};

interface HeldJob {
  id: string;
  status: string;
  attempt: string;
  /** When its record showed another attempt (a new claim: the `restarted`/`resumed` event) or an end. */
  changedAt?: number;
  changedTo?: string;
  /** When its record first read `queued` (put back in its queue: a lapsed heartbeat, a lost backend). */
  requeuedAt?: number;
}

interface FaultRecord extends Step {
  /** When the fault was injected (ms since load start). */
  injectedAt: number;
  /** When the process was gone (kill) or the fault in place. */
  downAt?: number;
  /** When the restart or SIGCONT was issued. */
  restoredAt?: number;
  /** When the restarted process served again (port answers, agent listed with its model loaded). */
  backAt?: number;
  /** Jobs the faulted agent (or the agent of the faulted simulator) held at the fault. */
  held: HeldJob[];
  /** Pauses (SIGSTOP): the jobs the agent held right before the SIGCONT, those claimed during the pause included. */
  heldAtRestore?: string[];
  /** Jobs not ended at the fault (from Redis' records, for Redis faults from the clients' knowledge). */
  inFlight: number;
  /** API faults: the jobs whose streams were connected to the replica. */
  streamsOnTarget?: string[];
}

const sleepUntil = (ctx: ClientContext, at: number) => sleep(Math.max(0, at - ctx.now()));

function gitCommit(): { commit: string; dirty_files: number } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).split('\n').filter(Boolean).length;
    return { commit, dirty_files: dirty };
  } catch {
    return { commit: 'unknown', dirty_files: -1 };
  }
}

const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number) as [number, number, number];

function seedOf(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return (h >>> 0) % 1_000_000;
}

/** Every other job is a chat (`messages`), the others a generate (`prompt`): both backend wires are exercised. */
function specFor(key: string, index: number, random: () => number): JobSpec {
  return { key, prompt: `chaos ${key}`, chat: index % 2 === 1, seed: seedOf(key), numPredict: NUM_PREDICT[0] + Math.floor(random() * (NUM_PREDICT[1] - NUM_PREDICT[0] + 1)) };
}

/** The simulators' catalog: the sample's qwen2.5:0.5b, generating at TOKENS_PER_S (its own 220/s would end a job in half a second). */
function simCatalog(dir: string): string {
  const model = SAMPLE_CATALOG.find((m) => m.name === MODEL);
  if (!model) throw new Error(`${MODEL} is not in the simulator's sample catalog`);
  const path = join(dir, 'gpu-sim.json');
  writeFileSync(path, JSON.stringify({ models: [{ ...model, tokens_per_s: TOKENS_PER_S }] }));
  return path;
}

function simArgs(catalog: string, port: number, timeScale: number): string[] {
  return [
    '--config',
    catalog,
    '--port',
    String(port),
    '--time-scale',
    String(timeScale),
    '--tokens-per-s',
    String(TOKENS_PER_S),
    '--num-parallel',
    String(SLOTS),
    '--max-loaded-models',
    '0',
    '--keep-alive',
    '-1',
    '--vram',
    '24GB',
    // Longer than any num_predict: every answer is cut at num_predict ("length").
    '--response-tokens-min',
    '200',
    '--response-tokens-max',
    '300',
    '--log-level',
    'warn',
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2).filter((arg) => arg !== '--'), options: { logs: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const startedAt = new Date();
  // The code under test is what was checked out at the start (others may commit during the run).
  const git = gitCommit();
  const load: Array<{ t_s: number; loadavg: number[] }> = [];
  const loadAtStart = loadavg();
  const logs = new LogFiles(values.logs ? resolve(values.logs) : tempDir('chaos-logs-'));
  const prefix = `chaos-${Date.now()}`;
  const keys = redisKeys(prefix);
  const logLevel = process.env.BENCH_CHAOS_LOG_LEVEL ?? 'info';

  // Redis with the AOF, in a dir of its own; restarts use the same port and dir.
  const redis = redisService(logs, await freePort(), tempDir('chaos-redis-'));
  await redis.start();

  const catalog = simCatalog(tempDir('chaos-sim-'));
  const simPorts = await Promise.all(Array.from({ length: AGENTS }, () => freePort()));
  const sims = simPorts.map((port, i) => {
    const url = `http://127.0.0.1:${port}`;
    return Object.assign(
      new Service(
        `sim-${i + 1}`,
        () => nodeApp(logs, `sim-${i + 1}`, 'gpu-sim', {}, simArgs(catalog, port, 1)),
        () => waitForHttp(`${url}/api/version`),
      ),
      { url },
    );
  });
  // The reference: the same simulator at time scale 0, not in the fleet, answers each job's
  // request directly after the run, so the text a client showed is checked against the answer.
  const refPort = await freePort();
  const reference = new Service(
    'sim-reference',
    () => nodeApp(logs, 'sim-reference', 'gpu-sim', {}, simArgs(catalog, refPort, 0)),
    () => waitForHttp(`http://127.0.0.1:${refPort}/api/version`),
  );

  const apiPorts = await Promise.all([freePort(), freePort()]);
  const apiUrls = apiPorts.map((port) => `http://127.0.0.1:${port}`);
  const apis = apiPorts.map(
    (port, i) =>
      new Service(
        `api-${i + 1}`,
        () =>
          nodeApp(logs, `api-${i + 1}`, 'api', {
            REDIS_URL: redis.url,
            REDIS_PREFIX: prefix,
            HOST: '127.0.0.1',
            PORT: String(port),
            LOG_LEVEL: process.env.BENCH_CHAOS_API_LOG_LEVEL ?? 'warn',
          }),
        () => waitForHttp(`${apiUrls[i]}/readyz`),
      ),
  );
  const agentIds = sims.map((_, i) => `chaos-agent-${i + 1}`);
  /** Ready: listed by the API with a heartbeat of this incarnation, state ready, the model loaded. */
  const agentListed = async (id: string, since: number, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; Date.now() < deadline; i++) {
      try {
        const response = await fetch(`${apiUrls[i % apiUrls.length]}/v1/agents`, { signal: AbortSignal.timeout(2_000) });
        if (response.ok) {
          const body = (await response.json()) as { data: Array<{ id: string; state: string; started_at: number; models_loaded: Array<{ name: string }> }> };
          const agent = body.data.find((a) => a.id === id);
          if (agent && agent.started_at >= since - 1_000 && agent.state === 'ready' && agent.models_loaded.some((m) => m.name === MODEL)) return;
        } else await response.body?.cancel();
      } catch {
        // replica down, or Redis
      }
      await sleep(200);
    }
    throw new Error(`agent ${id} was not listed ready with ${MODEL} loaded within ${timeoutMs} ms`);
  };
  const agents = sims.map((sim, i) => {
    let spawnedAt = 0;
    return new Service(
      `agent-${i + 1}`,
      () => {
        spawnedAt = Date.now();
        return nodeApp(logs, `agent-${i + 1}`, 'agent', {
          REDIS_URL: redis.url,
          REDIS_PREFIX: prefix,
          BACKEND_URL: sim.url,
          AGENT_ID: agentIds[i]!,
          AGENT_SLOTS: String(SLOTS),
          BACKEND_NUM_PARALLEL: String(SLOTS),
          PINNED_MODELS: MODEL,
          GPU_VRAM: '24GB',
          LOG_LEVEL: logLevel,
        });
      },
      () => agentListed(agentIds[i]!, spawnedAt),
    );
  });
  const byName = new Map<string, Service>([...sims, ...apis, ...agents].map((s) => [s.name, s]));

  process.stdout.write(`chaos: starting redis (AOF), ${AGENTS} gpu-sims, 2 API replicas, ${AGENTS} agents; logs in ${logs.dir}\n`);
  await Promise.all([...sims, reference].map((s) => s.start()));
  await Promise.all(apis.map((s) => s.start()));
  await Promise.all(agents.map((s) => s.start()));

  const ctx = new ClientContext(apiUrls, MODEL);
  const control = new Redis(redis.url, { maxRetriesPerRequest: 1, commandTimeout: 2_000, retryStrategy: () => 200, connectionName: 'chaos-control' });
  control.on('error', () => undefined);

  // A job to probe GET with, and a check that the stack works before the faults.
  const probeJob = await submit(ctx, specFor('probe-0', 0, mulberry32(1)), 'probe', true);
  if (!probeJob) throw new Error('the first job was not accepted');
  await poll(ctx, probeJob, 'probe_get', 100);
  if (probeJob.record?.status !== 'completed') throw new Error(`the first job did not complete: ${JSON.stringify(probeJob.record)}`);
  ctx.records.length = 0;

  // The load starts: the clock of the schedule is the clients' (ms since now).
  const t0 = ctx.now();
  const at = (ms: number) => t0 + ms;
  const sampler = setInterval(() => load.push({ t_s: Math.round((ctx.now() - t0) / 1000), loadavg: loadavg() }), 5_000);
  process.stdout.write(`chaos: load for ${LOAD_MS / 1000} s (${STREAM_CLIENTS} streamed, ${DETACHED_CLIENTS} detached clients), then up to ${GRACE_MS / 1000} s of grace\n`);

  const background: Array<Promise<unknown>> = [];
  const streamed = Array.from({ length: STREAM_CLIENTS }, async (_, w) => {
    const random = mulberry32(1000 + w);
    for (let i = 0; ctx.submitting; i++) {
      const job = await submit(ctx, specFor(`s${w}-${i}`, i, random), 'streamed', false);
      if (job) await follow(ctx, job);
      else await sleep(200);
    }
  });
  const detached = Array.from({ length: DETACHED_CLIENTS }, async (_, w) => {
    const random = mulberry32(2000 + w);
    for (let i = 0; ctx.submitting; i++) {
      const job = await submit(ctx, specFor(`d${w}-${i}`, i, random), 'detached', true);
      if (job) await poll(ctx, job);
      else await sleep(200);
    }
  });
  // GET prober: a request every 50 ms, alternating replicas, for the whole run.
  const prober = (async () => {
    for (let i = 0; !ctx.over(); i++) {
      void call(ctx, 'probe_get', i % apiUrls.length, 'GET', `/v1/jobs/${probeJob.id}`);
      await sleep(PROBE_GET_MS);
    }
  })();
  // POST prober: during Redis faults, a detached submission every 100 ms (accepted ones are tracked like the others).
  let postProbing = false;
  const postProber = (async () => {
    const random = mulberry32(3000);
    for (let i = 0; !ctx.over(); i++) {
      if (postProbing) {
        void probeSubmit(ctx, specFor(`p-${i}`, i, random), i % apiUrls.length).then((job) => {
          if (job) background.push(poll(ctx, job, 'get', 1_000));
        });
      }
      await sleep(PROBE_POST_MS);
    }
  })();

  /** Record of every job not ended at this moment: status, agent, attempt (one pipeline). */
  const snapshot = async () => {
    const open = ctx.jobs.filter((job) => job.endedAt === undefined && !job.notFound);
    const pipeline = control.pipeline();
    for (const job of open) pipeline.hmget(keys.job(job.id), 'status', 'agent', 'attempt');
    const replies = (await pipeline.exec()) ?? [];
    return open.map((job, i) => {
      const [status, agent, attempt] = (replies[i]?.[1] as Array<string | null> | undefined) ?? [];
      return { id: job.id, status: status ?? '', agent: agent ?? '', attempt: attempt ?? '' };
    });
  };
  /** Polls the held jobs' records every 50 ms: when each shows another attempt (its new claim) or an end. */
  const watchHeld = async (held: HeldJob[], untilMs: number) => {
    while (ctx.now() < untilMs && held.some((h) => h.changedAt === undefined)) {
      const pending = held.filter((h) => h.changedAt === undefined);
      try {
        const pipeline = control.pipeline();
        for (const h of pending) pipeline.hmget(keys.job(h.id), 'status', 'attempt');
        const replies = (await pipeline.exec()) ?? [];
        const now = ctx.now();
        pending.forEach((h, i) => {
          const [status, attempt] = (replies[i]?.[1] as Array<string | null> | undefined) ?? [];
          if (status === 'queued') h.requeuedAt ??= now;
          if (attempt && attempt !== h.attempt) {
            h.changedAt = now;
            h.changedTo = `attempt (${status})`;
          } else if (status && TERMINAL.has(status)) {
            h.changedAt = now;
            h.changedTo = status;
          }
        });
      } catch {
        // Redis busy or away; try again
      }
      await sleep(50);
    }
  };

  const faults: FaultRecord[] = [];
  const restarts: Array<Promise<void>> = [];
  const schedule = (async () => {
    for (const step of SCHEDULE) {
      await sleepUntil(ctx, at(step.at));
      const record: FaultRecord = { ...step, injectedAt: 0, held: [], inFlight: 0 };
      faults.push(record);
      const agentIndex = step.kind.startsWith('agent') || step.kind.startsWith('sim') ? Number(step.target.split('-')[1]) - 1 : -1;
      if (agentIndex >= 0) {
        const open = await snapshot().catch(() => []);
        record.inFlight = open.filter((o) => !TERMINAL.has(o.status)).length;
        record.held = open
          .filter((o) => o.agent === agentIds[agentIndex] && (o.status === 'loading' || o.status === 'running'))
          .map((o) => ({ id: o.id, status: o.status, attempt: o.attempt }));
      } else record.inFlight = ctx.jobs.filter((job) => job.endedAt === undefined).length;
      if (step.kind === 'api_kill') record.streamsOnTarget = ctx.jobs.filter((job) => job.connectedTo === 0).map((job) => job.id);
      record.injectedAt = ctx.now();
      const service = step.kind.startsWith('redis') ? redis : byName.get(step.target)!;
      switch (step.kind) {
        case 'agent_kill':
        case 'sim_kill':
        case 'api_kill':
          await service.kill9();
          break;
        case 'agent_stop':
        case 'sim_hang':
          service.pause();
          break;
        case 'redis_shutdown':
          postProbing = true;
          await redisShutdown(redis.url);
          await redis.exited();
          break;
        case 'redis_kill':
          postProbing = true;
          await redis.kill9();
          break;
      }
      record.downAt = ctx.now();
      process.stdout.write(`chaos: +${fmt((record.injectedAt - t0) / 1000, 1)} s ${step.what} (${record.held.length} jobs held, ${record.inFlight} in flight)\n`);
      if (record.held.length > 0) background.push(watchHeld(record.held, record.injectedAt + step.restoreAfterMs + 30_000));
      await sleepUntil(ctx, record.injectedAt + step.restoreAfterMs);
      if ((step.kind === 'agent_stop' || step.kind === 'sim_hang') && agentIndex >= 0) {
        const open = await snapshot().catch(() => []);
        record.heldAtRestore = open.filter((o) => o.agent === agentIds[agentIndex] && (o.status === 'loading' || o.status === 'running')).map((o) => o.id);
      }
      record.restoredAt = ctx.now();
      if (step.kind === 'agent_stop' || step.kind === 'sim_hang') {
        service.resume();
        record.backAt = ctx.now();
      } else if (step.kind.startsWith('redis')) {
        await redis.start();
        record.backAt = ctx.now();
        setTimeout(() => (postProbing = false), 5_000);
      } else {
        restarts.push(
          service.start().then(
            () => void (record.backAt = ctx.now()),
            (error: unknown) => void process.stderr.write(`chaos: ${step.target} did not come back: ${(error as Error).message}\n`),
          ),
        );
      }
    }
  })();

  await sleepUntil(ctx, at(LOAD_MS));
  ctx.submitting = false;
  await schedule;
  process.stdout.write(`chaos: +${fmt((ctx.now() - t0) / 1000, 1)} s submissions stopped; waiting for every accepted job to end (grace ${GRACE_MS / 1000} s)\n`);
  const graceEnd = at(LOAD_MS + GRACE_MS);
  while (ctx.now() < graceEnd && ctx.jobs.some((job) => job.endedAt === undefined && !job.notFound)) await sleep(250);
  const endOfRun = ctx.now();
  ctx.stop();
  clearInterval(sampler);
  await Promise.allSettled([...streamed, ...detached, prober, postProber, ...restarts]);
  await Promise.allSettled(background);

  // Every accepted job's final record, from a fresh context (the clients' one is stopped).
  const finalCtx = new ClientContext(apiUrls, MODEL);
  const jobs = ctx.jobs.filter((job) => job !== probeJob);
  for (let i = 0; i < jobs.length; i += 16) await Promise.all(jobs.slice(i, i + 16).map((job) => readRecord(finalCtx, job, finalCtx.now() + 10_000)));
  // The reference answers.
  const expected = new Map<string, string>();
  const completed = jobs.filter((job) => job.record?.status === 'completed');
  for (let i = 0; i < completed.length; i += 8) {
    await Promise.all(
      completed.slice(i, i + 8).map(async (job) => {
        const response = await fetch(`http://127.0.0.1:${refPort}/api/${job.spec.chat ? 'chat' : 'generate'}`, {
          method: 'POST',
          body: JSON.stringify({ model: MODEL, ...jobInput(job.spec), stream: false }),
        });
        const answer = (await response.json()) as { response?: string; message?: { content: string } };
        expected.set(job.id, (job.spec.chat ? answer.message?.content : answer.response) ?? '');
      }),
    );
  }
  const loadAtEnd = loadavg();
  control.disconnect();
  await ctx.dispatcher.close().catch(() => undefined);
  await finalCtx.dispatcher.close().catch(() => undefined);

  report({
    ctx,
    t0,
    endOfRun,
    jobs,
    faults,
    expected,
    startedAt,
    loadAtStart,
    loadAtEnd,
    load,
    logsDir: values.logs ? logs.dir : undefined,
    pids: [...byName.values(), redis],
    git,
  });
}

interface ReportInput {
  ctx: ClientContext;
  t0: number;
  endOfRun: number;
  jobs: Job[];
  faults: FaultRecord[];
  expected: Map<string, string>;
  startedAt: Date;
  loadAtStart: number[];
  loadAtEnd: number[];
  load: Array<{ t_s: number; loadavg: number[] }>;
  logsDir: string | undefined;
  pids: Service[];
  git: { commit: string; dirty_files: number };
}

const s1 = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? 'n/a' : fmt(ms / 1000, 1));
const ms0 = (ms: number | undefined) => (ms === undefined || !Number.isFinite(ms) ? 'n/a' : fmt(ms, 0));
const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

function report(input: ReportInput): void {
  const { ctx, t0, endOfRun, jobs, faults, expected } = input;
  const rel = (ms: number) => ms - t0;
  const terminalOf = (job: Job) => job.record?.status;

  // Which fault a job's ending belongs to: the latest one injected before the job ended, while the job was in flight (or within its restore window plus 10 s).
  const faultOf = (job: Job): string => {
    const end = job.endedAt ?? endOfRun;
    const candidates = faults.filter((f) => f.injectedAt <= end && f.injectedAt + f.restoreAfterMs + 10_000 >= job.acceptedAt);
    const f = candidates.at(-1);
    return f ? `${f.kind} ${f.target} @${s1(rel(f.injectedAt))}s` : 'none';
  };

  const lost = jobs.filter((job) => job.notFound || !TERMINAL.has(terminalOf(job) ?? ''));
  const streamedJobs = jobs.filter((job) => job.kind === 'streamed');
  const stuck = streamedJobs.filter((job) => job.transcript && !job.transcript.terminal && job.transcript.silenceUntil(endOfRun) > STUCK_MS);
  const silent = streamedJobs.filter((job) => job.transcript && job.transcript.terminal && job.transcript.maxSilenceMs > STUCK_MS);
  const unended = streamedJobs.filter((job) => job.transcript && !job.transcript.terminal);
  const seqBad = streamedJobs.filter((job) => job.transcript && (job.transcript.gaps > 0 || job.transcript.dups > 0 || job.transcript.afterTerminal > 0));
  const totals = {
    gaps: streamedJobs.reduce((sum, job) => sum + (job.transcript?.gaps ?? 0), 0),
    missing: streamedJobs.reduce((sum, job) => sum + (job.transcript?.missing ?? 0), 0),
    dups: streamedJobs.reduce((sum, job) => sum + (job.transcript?.dups ?? 0), 0),
  };
  // Text: a completed streamed job's shown text vs GET's result and vs the reference answer.
  const textChecks = jobs
    .filter((job) => job.record?.status === 'completed')
    .map((job) => {
      const want = expected.get(job.id);
      const got = job.record?.result?.text ?? '';
      const shown = job.transcript?.terminal?.type === 'done' ? job.transcript.text : undefined;
      return {
        job,
        vsGet: shown === undefined ? undefined : shown === got,
        shownVsReference: shown === undefined || want === undefined ? undefined : compareText(shown, want),
        getVsReference: want === undefined ? undefined : compareText(got, want),
      };
    });
  const duplicated = textChecks.filter((c) => c.shownVsReference === 'duplicated' || c.getVsReference === 'duplicated');
  const textMismatch = textChecks.filter(
    (c) => c.vsGet === false || (c.shownVsReference !== undefined && c.shownVsReference !== 'equal') || (c.getVsReference !== undefined && c.getVsReference !== 'equal'),
  );
  const failed = jobs.filter((job) => ['failed', 'cancelled', 'expired'].includes(terminalOf(job) ?? ''));
  const failedByCode = new Map<string, Job[]>();
  for (const job of failed) {
    const code = `${terminalOf(job)}: ${job.record?.error?.code ?? 'no code'}`;
    failedByCode.set(code, [...(failedByCode.get(code) ?? []), job]);
  }

  // Failover: from the kill/stop of an agent holding a job (or of its backend) to the job's new claim (`restarted`).
  const failoverOf = (f: FaultRecord) =>
    f.held.map((h) => {
      const job = jobs.find((j) => j.id === h.id);
      // The new attempt's first event: `restarted`, or `resumed` when it continues the text.
      const restartedRead = [...(job?.transcript?.restartedAt ?? []), ...(job?.transcript?.resumedAt ?? [])].filter((t) => t >= f.injectedAt).sort((a, b) => a - b)[0];
      const claim = h.changedTo?.startsWith('attempt') ? h.changedAt : undefined;
      const times = [restartedRead, claim].filter((t): t is number => t !== undefined);
      return {
        id: h.id,
        kind: job?.kind ?? 'unknown',
        ms: times.length ? Math.min(...times) - f.injectedAt : undefined,
        /** Fault → the record read `queued` (the job back in its queue); the rest is the wait for a new claim. */
        requeued_ms: h.requeuedAt === undefined ? undefined : h.requeuedAt - f.injectedAt,
        outcome: h.changedTo ?? `no change within ${(f.restoreAfterMs + 30_000) / 1000} s`,
        final: job?.record?.status ?? 'unknown',
      };
    });
  const agentFaults = faults.filter((f) => f.kind === 'agent_kill' || f.kind === 'agent_stop');
  const backendFaults = faults.filter((f) => f.kind === 'sim_kill' || f.kind === 'sim_hang');
  const failoverAgent = agentFaults.flatMap(failoverOf);
  const failoverBackend = backendFaults.flatMap(failoverOf);
  const dist = (list: Array<{ ms: number | undefined }>) => {
    const values = list.map((x) => x.ms).filter((v): v is number => v !== undefined);
    return { n: values.length, p50: percentile(values, 50), p99: percentile(values, 99), max: values.length ? Math.max(...values) : Number.NaN };
  };
  const agentDist = dist(failoverAgent);
  const backendDist = dist(failoverBackend);
  const agentNoFailover = failoverAgent.filter((x) => x.ms === undefined);

  // HTTP answers by phase (by the time each request was sent).
  const phases = [
    { name: 'baseline', from: t0, to: faults[0]?.injectedAt ?? t0 + LOAD_MS },
    ...faults.map((f, i) => ({ name: `${f.kind} ${f.target}`, from: f.injectedAt, to: faults[i + 1]?.injectedAt ?? t0 + LOAD_MS })),
    { name: 'drain (no submissions)', from: t0 + LOAD_MS, to: Number.POSITIVE_INFINITY },
  ];
  const tally = (records: HttpRecord[]) => {
    const counts: Record<string, number> = {};
    for (const r of records) {
      const label = r.status === 0 ? `no answer (${r.error})` : r.code ? `${r.status} ${r.code}` : String(r.status);
      counts[label] = (counts[label] ?? 0) + 1;
    }
    return counts;
  };
  const byPhase = phases.map((p) => {
    const records = ctx.records.filter((r) => r.sent >= p.from && r.sent < p.to);
    const fivexx = records.filter((r) => r.status >= 500);
    return {
      phase: p.name,
      requests: records.length,
      ok_2xx: records.filter((r) => r.status >= 200 && r.status < 300).length,
      r429: records.filter((r) => r.status === 429).length,
      other_4xx: records.filter((r) => r.status >= 400 && r.status < 500 && r.status !== 429).length,
      r5xx: fivexx.length,
      r5xx_codes: tally(fivexx),
      r5xx_not_503: fivexx.filter((r) => r.status !== 503).length,
      no_answer: records.filter((r) => r.status === 0).length,
      no_answer_causes: tally(records.filter((r) => r.status === 0)),
    };
  });

  // Redis outages: what the API answered while Redis was away, and the first 2xx after it was back.
  const outages = faults
    .filter((f) => f.kind.startsWith('redis'))
    .map((f) => {
      const down = f.downAt ?? f.injectedAt;
      const back = f.backAt ?? Number.POSITIVE_INFINITY;
      const during = ctx.records.filter((r) => r.sent >= down && r.sent <= back && r.status !== 0);
      const latencies = during.map((r) => r.answered - r.sent);
      const not503 = during.filter((r) => r.status !== 503);
      const firstOk = (filter: (r: HttpRecord) => boolean) => {
        const ok = ctx.records.filter((r) => filter(r) && r.status >= 200 && r.status < 300 && r.answered >= back).map((r) => r.answered - back);
        return ok.length ? Math.min(...ok) : Number.NaN;
      };
      return {
        fault: f.kind,
        at_s: rel(f.injectedAt) / 1000,
        away_ms: back - down,
        answers: during.length,
        by_status: tally(during),
        not_503: not503.length,
        latency_ms: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.length ? Math.max(...latencies) : Number.NaN },
        within_100ms_share: during.length ? during.filter((r) => r.answered - r.sent <= 100).length / during.length : Number.NaN,
        no_answer: ctx.records.filter((r) => r.sent >= down && r.sent <= back && r.status === 0).length,
        first_2xx_after_back_ms: firstOk(() => true),
        first_get_2xx_after_back_ms: firstOk((r) => r.kind === 'probe_get' || r.kind === 'get'),
        first_post_2xx_after_back_ms: firstOk((r) => r.kind === 'submit' || r.kind === 'probe_post'),
        first_2xx_per_replica_ms: ctx.replicas.map((_, i) => firstOk((r) => r.replica === i)),
      };
    });
  const redisAwayOk = outages.every((o) => o.not_503 === 0 && o.latency_ms.max <= TARGETS.redis_away_503_within_ms);
  const firstOkWorst = Math.max(...outages.map((o) => o.first_2xx_after_back_ms));

  // Streams and the API replica's death: reconnect time of the streams it carried.
  const breaks = streamedJobs.flatMap((job) => job.breaks);
  const breakCauses: Record<string, number> = {};
  for (const b of breaks) {
    const cause = b.why.replace(/\d+/g, 'N');
    breakCauses[cause] = (breakCauses[cause] ?? 0) + 1;
  }

  const failedBySurvivable = failed.length; // every scheduled fault is one a restart survives
  /** API replica killed: how long its streams took to be connected again (to the other replica, or to it restarted). */
  const reconnectOf = (f: FaultRecord) =>
    (f.streamsOnTarget ?? []).map((id) => {
      const job = jobs.find((j) => j.id === id);
      const next = job?.connectTimes.find((t) => t >= f.injectedAt);
      const endedBefore = job?.endedAt !== undefined && job.endedAt < (next ?? Number.POSITIVE_INFINITY);
      return { id, ms: next === undefined || endedBefore ? undefined : next - f.injectedAt };
    });
  const allFaultsRows = faults.map((f) => {
    const fo = failoverOf(f);
    const d = dist(fo);
    const requeued = dist(fo.map((x) => ({ ms: x.requeued_ms })));
    const reconnect = dist(reconnectOf(f));
    return {
      at_s: s1(rel(f.injectedAt)),
      fault: f.what,
      held_jobs: f.heldAtRestore ? `${f.held.length} (${f.heldAtRestore.filter((id) => !f.held.some((h) => h.id === id)).length} more claimed while paused)` : f.held.length,
      in_flight: f.inFlight,
      restored_at_s: s1(f.restoredAt === undefined ? undefined : rel(f.restoredAt)),
      serving_again_s: s1(f.backAt === undefined ? undefined : rel(f.backAt)),
      failover_p50_p99_max_ms: f.held.length ? `${ms0(d.p50)} / ${ms0(d.p99)} / ${ms0(d.max)} (n=${d.n})` : '',
      requeued_p50_max_ms: requeued.n ? `${ms0(requeued.p50)} / ${ms0(requeued.max)}` : '',
      streams_reconnected_p50_max_ms: f.streamsOnTarget ? `${ms0(reconnect.p50)} / ${ms0(reconnect.max)} (n=${reconnect.n} of ${f.streamsOnTarget.length})` : '',
      held_outcomes: Object.entries(tally2(fo.map((x) => x.outcome)))
        .map(([k, v]) => `${k} ×${v}`)
        .join(', '),
    };
  });

  printTable('Faults (times in s after the load started)', allFaultsRows);
  printTable(
    'HTTP answers by phase (by when the request was sent; every request of every client and probe)',
    byPhase.map((p) => ({
      phase: p.phase,
      requests: p.requests,
      '2xx': p.ok_2xx,
      'HTTP 429': p.r429,
      'other 4xx': p.other_4xx,
      '5xx': p.r5xx,
      '5xx codes': Object.entries(p.r5xx_codes)
        .map(([k, v]) => `${k} ×${v}`)
        .join(', '),
      'no answer': p.no_answer,
    })),
  );
  printTable(
    'Redis away (SHUTDOWN / kill -9 → the restarted server answers PING) and back',
    outages.map((o) => ({
      fault: o.fault,
      away_ms: ms0(o.away_ms),
      answers: o.answers,
      not_503: o.not_503,
      latency_p50_p99_max_ms: `${ms0(o.latency_ms.p50)} / ${ms0(o.latency_ms.p99)} / ${ms0(o.latency_ms.max)}`,
      within_100ms: `${fmt(o.within_100ms_share * 100, 1)} %`,
      no_answer: o.no_answer,
      first_2xx_after_ms: ms0(o.first_2xx_after_back_ms),
      first_get_2xx_ms: ms0(o.first_get_2xx_after_back_ms),
      first_post_2xx_ms: ms0(o.first_post_2xx_after_back_ms),
    })),
  );
  if (failed.length > 0) {
    printTable(
      'Jobs that did not complete (error code from GET; the fault in flight when each ended)',
      failed.map((job) => ({
        job: job.id,
        kind: job.kind,
        status: terminalOf(job) ?? '',
        code: job.record?.error?.code ?? '',
        message: (job.record?.error?.message ?? '').slice(0, 90),
        fault: faultOf(job),
      })),
    );
  }
  const anomalies = [
    ...lost.map((job) => ({ job: job.id, kind: job.kind, what: `lost: ${job.notFound ? 'GET 404' : `status ${terminalOf(job) ?? 'unknown'}`}`, fault: faultOf(job) })),
    ...stuck.map((job) => ({ job: job.id, kind: job.kind, what: `stuck: no event for ${s1(job.transcript!.silenceUntil(endOfRun))} s, never ended`, fault: faultOf(job) })),
    ...silent.map((job) => ({
      job: job.id,
      kind: job.kind,
      what: `silent ${s1(job.transcript!.maxSilenceMs)} s, then ended (accepted at ${s1(rel(job.acceptedAt))} s, ran on ${job.record?.agent ?? '?'})`,
      fault: faultOf(job),
    })),
    ...seqBad.map((job) => ({
      job: job.id,
      kind: job.kind,
      what: `seq: ${job.transcript!.gaps} gaps (${job.transcript!.missing} missing), ${job.transcript!.dups} dups, ${job.transcript!.afterTerminal} after end`,
      fault: faultOf(job),
    })),
    ...textMismatch.map((c) => ({
      job: c.job.id,
      kind: c.job.kind,
      what: `text: shown=GET ${c.vsGet ?? 'n/a'}, shown vs answer ${c.shownVsReference ?? 'n/a'}, GET vs answer ${c.getVsReference ?? 'n/a'}`,
      fault: faultOf(c.job),
      detail: {
        events: c.job.transcript?.shape(),
        shown: c.job.transcript?.text,
        get: c.job.record?.result?.text,
        answer: expected.get(c.job.id),
        agent: c.job.record?.agent,
        chat: c.job.spec.chat,
      },
    })),
    ...streamedJobs.filter((job) => job.noContentBeforeEnd).map((job) => ({ job: job.id, kind: job.kind, what: '204 before the end was read', fault: faultOf(job) })),
  ];
  if (anomalies.length > 0) {
    printTable(
      `Anomalies${anomalies.length > 40 ? ` (first 40 of ${anomalies.length}; all in the JSON)` : ''}`,
      anomalies.slice(0, 40).map(({ job, kind, what, fault }) => ({ job, kind, what, fault })),
    );
  }

  const restartedJobs = streamedJobs.filter((job) => (job.transcript?.restartedAt.length ?? 0) > 0).length;
  const resumedJobs = streamedJobs.filter((job) => (job.transcript?.resumedAt.length ?? 0) > 0).length;
  // Restarts nobody asked for: a streamed job that got `restarted`/`resumed` though it was not
  // held by an agent or backend the schedule took away (e.g. a heartbeat taken for lapsed).
  const heldIds = new Set([...agentFaults, ...backendFaults].flatMap((f) => f.held.map((h) => h.id)));
  const unexplained = streamedJobs.filter((job) => (job.transcript?.restartedAt.length ?? 0) + (job.transcript?.resumedAt.length ?? 0) > 0 && !heldIds.has(job.id));
  const unexplainedByFault = tally2(unexplained.map(faultOf));
  const summary = [
    {
      figure: 'accepted jobs (streamed / detached / probes)',
      measured: `${jobs.length} (${streamedJobs.length} / ${jobs.filter((j) => j.kind === 'detached').length} / ${jobs.filter((j) => j.kind === 'probe').length})`,
      target: '',
      verdict: '',
    },
    { figure: 'completed', measured: String(jobs.filter((j) => terminalOf(j) === 'completed').length), target: '', verdict: '' },
    { figure: 'lost (accepted, not ended by the end + grace)', measured: String(lost.length), target: '0', verdict: verdict(lost.length === 0) },
    { figure: `stuck streams (no event > ${STUCK_MS / 1000} s, never ended)`, measured: String(stuck.length), target: '0', verdict: verdict(stuck.length === 0) },
    {
      figure: `streams silent > ${STUCK_MS / 1000} s (then ended) / streams never ended`,
      measured: `${silent.length} / ${unended.length}`,
      target: '0 / 0',
      verdict: verdict(silent.length === 0 && unended.length === 0),
    },
    {
      figure: 'seq gaps / duplicates (streams with any)',
      measured: `${totals.gaps} (${totals.missing} events missing) / ${totals.dups} (${seqBad.length})`,
      target: '0',
      verdict: verdict(seqBad.length === 0),
    },
    { figure: 'duplicated text (shown or GET vs the answer)', measured: String(duplicated.length), target: '0', verdict: verdict(duplicated.length === 0) },
    {
      figure: 'text mismatches: shown ≠ GET / shown ≠ answer / GET ≠ answer',
      measured: `${textChecks.filter((c) => c.vsGet === false).length} / ${textChecks.filter((c) => c.shownVsReference !== undefined && c.shownVsReference !== 'equal').length} / ${textChecks.filter((c) => c.getVsReference !== undefined && c.getVsReference !== 'equal').length}`,
      target: '0',
      verdict: verdict(textMismatch.length === 0),
    },
    {
      figure: 'jobs failed by a fault a restart survives',
      measured: `${failedBySurvivable} (${[...failedByCode].map(([k, v]) => `${k} ×${v.length}`).join(', ') || 'none'})`,
      target: '0',
      verdict: verdict(failedBySurvivable === 0),
    },
    {
      figure: 'failover, agent kill/stop → restarted/resumed, p50 / p99 / max ms',
      measured: `${ms0(agentDist.p50)} / ${ms0(agentDist.p99)} / ${ms0(agentDist.max)} (n=${agentDist.n}${agentNoFailover.length ? `, ${agentNoFailover.length} held jobs never restarted` : ''})`,
      target: `p99 ≤ ${TARGETS.failover_p99_ms}`,
      verdict: verdict(agentDist.n > 0 && agentDist.p99 <= TARGETS.failover_p99_ms && agentNoFailover.length === 0),
    },
    {
      figure: '… backend kill/hang → restarted/resumed, p50 / p99 / max ms',
      measured: `${ms0(backendDist.p50)} / ${ms0(backendDist.p99)} / ${ms0(backendDist.max)} (n=${backendDist.n} of ${failoverBackend.length} held)`,
      target: '',
      verdict: '',
    },
    { figure: 'streamed jobs restarted / resumed / stream breaks (reconnects)', measured: `${restartedJobs} / ${resumedJobs} / ${breaks.length}`, target: '', verdict: '' },
    {
      figure: '… restarted/resumed though their agent and backend were not faulted',
      measured: `${unexplained.length}${
        unexplained.length
          ? ` (${Object.entries(unexplainedByFault)
              .map(([k, v]) => `${k} ×${v}`)
              .join(', ')})`
          : ''
      }`,
      target: '',
      verdict: '',
    },
    {
      figure: '5xx other than 503, whole run',
      measured: String(byPhase.reduce((sum, p) => sum + p.r5xx_not_503, 0)),
      target: '0',
      verdict: verdict(byPhase.every((p) => p.r5xx_not_503 === 0)),
    },
    {
      figure: 'while Redis is away: every answer 503, max latency ms',
      measured: outages.map((o) => `${o.fault}: ${o.not_503} not 503, max ${ms0(o.latency_ms.max)}`).join('; '),
      target: `503 ≤ ${TARGETS.redis_away_503_within_ms} ms`,
      verdict: verdict(redisAwayOk),
    },
    {
      figure: 'Redis back → first 2xx, ms',
      measured: outages.map((o) => `${o.fault}: ${ms0(o.first_2xx_after_back_ms)} (POST ${ms0(o.first_post_2xx_after_back_ms)})`).join('; '),
      target: `≤ ${TARGETS.first_2xx_after_redis_ms}`,
      verdict: verdict(firstOkWorst <= TARGETS.first_2xx_after_redis_ms),
    },
    {
      figure: 'load average (1 min) at start / max / end',
      measured: `${input.loadAtStart[0]} / ${Math.max(...input.load.map((l) => l.loadavg[0]!), input.loadAtStart[0]!)} / ${input.loadAtEnd[0]}`,
      target: '',
      verdict: '',
    },
  ];
  printTable(`Summary (chaos run, ${s1(endOfRun - t0)} s of load and grace)`, summary);

  const git = input.git;
  const result = {
    command: 'pnpm bench:chaos',
    started_at: input.startedAt.toISOString(),
    git,
    loadavg: { start: input.loadAtStart, end: input.loadAtEnd, samples: input.load },
    setup: {
      model: MODEL,
      agents: AGENTS,
      slots_per_agent: SLOTS,
      api_replicas: 2,
      sim: { time_scale: 1, tokens_per_s: TOKENS_PER_S, num_parallel: SLOTS },
      num_predict: NUM_PREDICT,
      streamed_clients: STREAM_CLIENTS,
      detached_clients: DETACHED_CLIENTS,
      load_ms: LOAD_MS,
      grace_ms: GRACE_MS,
      stall_ms: 45_000,
      redis: 'appendonly yes, appendfsync everysec, noeviction, save ""',
      product_settings: 'defaults (agents: heartbeat 2 s, lock 15 s; API: AGENT_LAPSE_MS 3.5 s, FEED_STALL_MS 30 s, SSE heartbeat 15 s)',
      logs: input.logsDir ?? 'removed',
    },
    schedule: SCHEDULE,
    targets: TARGETS,
    summary: Object.fromEntries(summary.map((row) => [row.figure, { measured: row.measured, target: row.target, verdict: row.verdict }])),
    counts: {
      accepted: jobs.length,
      streamed: streamedJobs.length,
      detached: jobs.filter((j) => j.kind === 'detached').length,
      probes: jobs.filter((j) => j.kind === 'probe').length,
      completed: jobs.filter((j) => terminalOf(j) === 'completed').length,
      lost: lost.length,
      stuck: stuck.length,
      silent_over_30s_then_ended: silent.length,
      streams_never_ended: unended.length,
      seq: { ...totals, streams_with_anomaly: seqBad.length },
      duplicated_text: duplicated.length,
      text_mismatch: textMismatch.length,
      failed: failed.length,
      failed_by_code: Object.fromEntries([...failedByCode].map(([k, v]) => [k, v.length])),
      streamed_restarted: restartedJobs,
      streamed_resumed: resumedJobs,
      streamed_restarted_or_resumed_unfaulted: unexplained.map((job) => ({ id: job.id, fault: faultOf(job), chat: job.spec.chat })),
      stream_breaks: breaks.length,
      stream_break_causes: breakCauses,
    },
    failover: {
      agent_ms: { p50: agentDist.p50, p99: agentDist.p99, max: agentDist.max, n: agentDist.n },
      backend_ms: { p50: backendDist.p50, p99: backendDist.p99, max: backendDist.max, n: backendDist.n },
      agent_jobs: failoverAgent,
      backend_jobs: failoverBackend,
    },
    faults: faults.map((f) => ({
      ...f,
      injected_at_s: rel(f.injectedAt) / 1000,
      down_at_s: f.downAt === undefined ? undefined : rel(f.downAt) / 1000,
      restored_at_s: f.restoredAt === undefined ? undefined : rel(f.restoredAt) / 1000,
      back_at_s: f.backAt === undefined ? undefined : rel(f.backAt) / 1000,
      held: f.held.map((h) => ({
        ...h,
        changed_after_ms: h.changedAt === undefined ? undefined : h.changedAt - f.injectedAt,
        requeued_after_ms: h.requeuedAt === undefined ? undefined : h.requeuedAt - f.injectedAt,
      })),
      streams_reconnected: f.streamsOnTarget ? reconnectOf(f) : undefined,
    })),
    http_by_phase: byPhase,
    redis_outages: outages,
    failed_jobs: failed.map((job) => ({
      id: job.id,
      kind: job.kind,
      status: terminalOf(job),
      code: job.record?.error?.code,
      message: job.record?.error?.message,
      fault: faultOf(job),
      accepted_at_s: rel(job.acceptedAt) / 1000,
      ended_at_s: job.endedAt === undefined ? undefined : rel(job.endedAt) / 1000,
    })),
    anomalies,
    pids: Object.fromEntries(input.pids.map((s) => [s.name, s.pids])),
  };
  process.stdout.write(`\nwrote ${writeResult('chaos', result)}\n`);
}

function tally2(values: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

// Bounded whatever happens: every child is killed and the temp dirs go, at the end, on an
// error, on Ctrl-C or SIGTERM, and after the hard timeout.
process.on('exit', killEverything);
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  process.on(signal, () => {
    process.stderr.write(`chaos: ${signal}, stopping everything\n`);
    killEverything();
    process.exit(code);
  });
}
const hardTimeout = setTimeout(() => {
  process.stderr.write(`chaos: hard timeout (${HARD_TIMEOUT_MS} ms), killing everything\n`);
  killEverything();
  process.exit(124);
}, HARD_TIMEOUT_MS);
main().then(
  () => {
    clearTimeout(hardTimeout);
    killEverything();
    process.exit(0);
  },
  (error: unknown) => {
    process.stderr.write(`chaos failed: ${(error as Error).stack ?? String(error)}\n`);
    killEverything();
    process.exit(1);
  },
);
