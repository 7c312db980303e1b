/**
 * What every performance benchmark needs: a dedicated Redis, the apps as separate
 * processes (built `dist/`, as an operator runs them), the machine's description, and a
 * place to write results. The benchmark's own process is the load generator, so the
 * system under test never shares an event loop with the load.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { freePort, spawnRedisServer, type RedisHandle } from '@switchyard/testing/redis-server';
import { spawnRedisCluster, type RedisClusterHandle } from '@switchyard/testing/redis-cluster';
import { percentile } from '../common/stats.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const RESULTS_DIR = join(ROOT, 'bench', 'results');
/**
 * Where the apps under test are built. Another checkout (BENCH_APPS_ROOT=/path) lets the
 * same benchmark compare two versions of Switchyard in one session (before/after).
 */
export const APPS_ROOT = process.env.BENCH_APPS_ROOT ?? ROOT;

export interface Proc {
  name: string;
  child: ChildProcess;
  url?: string;
  stop(): Promise<void>;
}

const running: Proc[] = [];

/** Starts an app's built entry point with the given environment; its output goes to a log file. */
export function startApp(name: string, app: 'api' | 'agent' | 'gpu-sim', env: Record<string, string>, args: string[] = [], nodeArgs: string[] = []): Proc {
  // BENCH_PROFILE=<dir> writes a V8 CPU profile of each app (see bench/perf/profile-summary.ts).
  const profile = process.env.BENCH_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`] : [];
  const child = spawn(process.execPath, [...profile, ...nodeArgs, join(APPS_ROOT, 'apps', app, 'dist', 'main.js'), ...args], {
    env: { ...process.env, LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const proc: Proc = {
    name,
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
  running.push(proc);
  return proc;
}

export async function waitForHttp(url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

export async function startRedis(): Promise<RedisHandle & { child: ChildProcess }> {
  // Always a dedicated server: a shared one would mix other traffic into commandstats.
  const redis = await spawnRedisServer();
  // Stopped last (stopAll goes in reverse), so apps can drain against it.
  running.push({ name: 'redis', child: redis.child, stop: () => redis.stop() });
  return { ...redis, stop: async () => undefined };
}

/** A dedicated Redis Cluster of `masters` masters (bench:redis-modes), stopped with the other processes. */
export async function startRedisCluster(masters = 3): Promise<RedisClusterHandle> {
  const cluster = await spawnRedisCluster({ masters });
  // Stopping it once stops every node (and again does nothing).
  for (const child of cluster.children) running.push({ name: 'redis-cluster', child, stop: () => cluster.stop() });
  return { ...cluster, stop: async () => undefined };
}

/**
 * Lets a process run before every ordinary one (SCHED_FIFO 1, all threads; `nice -10` if
 * that is refused). For Redis in a benchmark that reads `INFO commandstats` time: that is
 * wall time inside Redis, so on a shared machine a command preempted by another process
 * reads milliseconds longer; a Redis that is never preempted reads what it executed, as on a
 * core of its own. Redis sleeps in epoll when idle, and the kernel's real-time throttling
 * (95 % of a CPU) bounds it regardless. Returns what was applied.
 */
/** Puts a process back among the ordinary ones (SCHED_OTHER, nice 0). */
export function deprioritize(pid: number): void {
  for (const [command, args] of [
    ['chrt', ['-a', '-o', '-p', '0', String(pid)]],
    ['renice', ['-n', '0', '-p', String(pid)]],
  ] as const) {
    try {
      execFileSync(command, [...args], { stdio: 'ignore' });
    } catch {
      // was not changed, or cannot be
    }
  }
}

export function prioritize(pid: number): 'SCHED_FIFO 1' | 'nice -10' | 'none' {
  try {
    execFileSync('chrt', ['-a', '-f', '-p', '1', String(pid)], { stdio: 'ignore' });
    return 'SCHED_FIFO 1';
  } catch {
    try {
      execFileSync('renice', ['-n', '-10', '-p', String(pid)], { stdio: 'ignore' });
      return 'nice -10';
    } catch {
      return 'none';
    }
  }
}

export async function startSim(options: { port?: number; timeScale?: number; numParallel?: number; extra?: string[] } = {}): Promise<Proc & { url: string }> {
  const port = options.port ?? (await freePort());
  const proc = startApp('gpu-sim', 'gpu-sim', {}, [
    '--port',
    String(port),
    '--time-scale',
    String(options.timeScale ?? 0),
    '--num-parallel',
    String(options.numParallel ?? 64),
    '--max-queue',
    '100000',
    '--keep-alive',
    '-1',
    // Hundreds of parallel slots need room for their KV caches; the benchmarks are about
    // the broker's overhead, not about fitting models.
    '--vram',
    '4TB',
    '--log-level',
    'warn',
    ...(options.extra ?? []),
  ]);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/api/version`);
  return Object.assign(proc, { url });
}

export async function startApi(redisUrl: string, prefix: string, env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<Proc & { url: string }> {
  const port = await freePort();
  const proc = startApp('api', 'api', { REDIS_URL: redisUrl, REDIS_PREFIX: prefix, PORT: String(port), HOST: '127.0.0.1', ...env }, [], nodeArgs);
  const url = `http://127.0.0.1:${port}`;
  await waitForHttp(`${url}/readyz`);
  return Object.assign(proc, { url });
}

export function startAgentProc(redisUrl: string, prefix: string, backendUrl: string, env: Record<string, string> = {}, nodeArgs: string[] = []): Proc {
  return startApp(
    'agent',
    'agent',
    {
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      BACKEND_URL: backendUrl,
      AGENT_ID: `bench-agent-${Math.random().toString(36).slice(2, 8)}`,
      HEARTBEAT_INTERVAL_MS: '500',
      GPU_VRAM: '4TB',
      INVENTORY_REFRESH_MS: '2000',
      ...env,
    },
    [],
    nodeArgs,
  );
}

/** Waits until the API sees `count` live agents serving `model` (so admission accepts it). */
export async function waitForFleet(apiUrl: string, model: string, count = 1, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const agents = (await fetch(`${apiUrl}/v1/agents`).then((r) => r.json())) as { data: Array<{ models_available: Array<{ name: string }> }> };
    if (agents.data.filter((agent) => agent.models_available.some((m) => m.name === model)).length >= count) return;
    await sleep(100);
  }
  throw new Error(`no agent serving ${model} appeared within ${timeoutMs} ms`);
}

export async function stopAll(): Promise<void> {
  for (const proc of running.reverse()) await proc.stop().catch(() => undefined);
  running.length = 0;
}

export function median(values: number[]): number {
  return percentile(values, 50);
}

/** Resident set size of a process, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : Number.NaN;
}

function installedVersion(name: string): string {
  try {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'apps', 'api', 'node_modules', name, 'package.json'), 'utf8')) as { version: string };
    return pkg.version;
  } catch {
    return 'unknown';
  }
}

export function machine(): Record<string, unknown> {
  let redis = 'unknown';
  try {
    redis = /v=(\S+)/.exec(execFileSync('redis-server', ['--version'], { encoding: 'utf8' }))?.[1] ?? redis;
  } catch {
    // not on PATH
  }
  return {
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model,
    memory_gb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    redis,
    bullmq: installedVersion('bullmq'),
    ioredis: installedVersion('ioredis'),
    fastify: installedVersion('fastify'),
    date: new Date().toISOString(),
  };
}

export function writeResult(name: string, result: Record<string, unknown>): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(path, JSON.stringify({ ...result, machine: machine() }, null, 2) + '\n');
  return path;
}

export function printTable(title: string, rows: Array<Record<string, string | number>>): void {
  process.stdout.write(`\n${title}\n`);
  if (rows.length === 0) return;
  const columns = Object.keys(rows[0]!);
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => String(row[column]).length)));
  const line = (cells: string[]) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join('  ');
  process.stdout.write(line(columns) + '\n' + line(widths.map((w) => '-'.repeat(w))) + '\n');
  for (const row of rows) process.stdout.write(line(columns.map((c) => String(row[c]))) + '\n');
}

export function fmt(value: number, digits = 2): string {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/** Runs `main`, always stopping every process it started. */
export function runBenchmark(main: () => Promise<void>): void {
  const cleanUp = async (code: number) => {
    await stopAll();
    process.exit(code);
  };
  process.on('SIGINT', () => void cleanUp(130));
  // A crash must not leave the apps and Redis running behind it.
  process.on('unhandledRejection', (error) => {
    process.stderr.write(`benchmark failed: ${(error as Error)?.stack ?? String(error)}\n`);
    void cleanUp(1);
  });
  process.on('exit', () => {
    for (const proc of running) if (proc.child.exitCode === null) proc.child.kill('SIGKILL');
  });
  // `timeout` and CI send SIGTERM: the apps and Redis must not outlive the benchmark.
  process.on('SIGTERM', () => void cleanUp(143));
  main().then(
    () => cleanUp(0),
    (error) => {
      process.stderr.write(`benchmark failed: ${(error as Error).stack ?? error}\n`);
      void cleanUp(1);
    },
  );
}
