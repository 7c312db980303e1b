/**
 * The system the fuzz suite attacks: gpu-sim, one agent and the API, each its own process
 * (their built `dist/`, as an operator runs them), on a Redis key prefix of their own, with
 * API keys for two tenants and an admin key.
 *
 * Why the API runs in a child process rather than in the test's: its resident memory is
 * then its own (the fuzzer's generated bodies and fast-check would otherwise be in the
 * number), a crash is seen as an exit (instead of taking the test runner down with it), and
 * the process can be asked to collect garbage before its RSS is read: it starts with
 * `--expose-gc` and a one-line `--import` hook that runs `gc()` on SIGUSR2 and says so on
 * stderr, so a reading never races the collection.
 *
 * The route table is read from an in-process instance of the same API (same keys),
 * through Fastify's `fastify.initialization` diagnostics channel: an `onRoute` hook added
 * there, before any route is registered, sees every route, Bull Board's included.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createApi, parseConfig } from '@switchyard/api';
import { modelToQueueName } from '@switchyard/protocol';
import { freePort } from '@switchyard/testing/redis-server';
import { FUZZ_KEYS, MODEL, type Placeholders, type RouteEntry } from './cases.js';

/** The repository root, found from this file whether it runs as source or from bench/dist. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'pnpm-workspace.yaml'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('cannot find the repository root (pnpm-workspace.yaml)');
    dir = parent;
  }
  return dir;
}

/** The repository root. */
export const REPO_ROOT = repoRoot();
const ROOT = REPO_ROOT;
const GC_DONE = 'switchyard-fuzz-gc-done';
const GC_HOOK = `process.on('SIGUSR2',()=>{globalThis.gc();globalThis.gc();process.stderr.write('${GC_DONE}\\n')})`;

export interface FuzzTargetOptions {
  redisUrl: string;
  /** Redis key prefix (unique per run). */
  prefix: string;
  /** Where child processes' unexpected stderr goes (default: this process's stderr). */
  log?: (line: string) => void;
}

/** An error-level line the API logged, with how often it appeared. */
export interface LoggedError {
  message: string;
  count: number;
}

export interface FuzzTarget {
  port: number;
  values: Placeholders;
  routes: RouteEntry[];
  prefix: string;
  /** Job index keys (`<prefix>:job:{id}`) in Redis now. */
  jobKeyCount(): Promise<number>;
  /** The API process is running (not exited). */
  alive(): boolean;
  /** How the API process ended, if it did. */
  exitInfo(): string | undefined;
  /** The API's last stderr lines (for a crash report). */
  stderrTail(): string[];
  /** Starts the API again after a crash, on the same port. */
  restart(): Promise<void>;
  /** The API's resident set size after a full garbage collection, in bytes. */
  rssAfterGc(): Promise<number>;
  /** Error-level lines the API logged so far (deduplicated). */
  errorLogs(): LoggedError[];
  /** `/healthz` and `/readyz` answer 200. */
  healthy(): Promise<boolean>;
  close(): Promise<void>;
}

interface Child {
  process: ChildProcess;
  name: string;
}

function startChild(name: string, app: 'api' | 'agent' | 'gpu-sim', args: string[], env: Record<string, string>, nodeArgs: string[] = []): Child {
  const entry = join(ROOT, 'apps', app, 'dist', 'main.js');
  if (!existsSync(entry)) throw new Error(`${entry} is missing: build first (pnpm turbo run build)`);
  const child = spawn(process.execPath, [...nodeArgs, entry, ...args], { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  return { process: child, name };
}

async function stopChild(child: Child): Promise<void> {
  const proc = child.process;
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise((resolveExit) => proc.once('exit', resolveExit));
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await sleep(50);
  }
  throw new Error(`${what} did not happen within ${timeoutMs} ms`);
}

/** Environment of the API under test. */
function apiEnv(redisUrl: string, prefix: string, port: number): Record<string, string> {
  return {
    REDIS_URL: redisUrl,
    REDIS_PREFIX: prefix,
    HOST: '127.0.0.1',
    PORT: String(port),
    API_KEYS: `${FUZZ_KEYS.tenantA.tenant}:${FUZZ_KEYS.tenantA.key},${FUZZ_KEYS.tenantB.tenant}:${FUZZ_KEYS.tenantB.key}`,
    ADMIN_API_KEYS: FUZZ_KEYS.admin.key,
    FLEET_CACHE_MS: '50',
    // Only error-level lines are collected; warnings (a refused stream, a slow client) are noise here.
    LOG_LEVEL: 'error',
  };
}

/**
 * Every route the API registers (method and URL pattern), read from an in-process instance
 * built with the same configuration.
 */
export async function collectRoutes(redisUrl: string, prefix: string): Promise<RouteEntry[]> {
  const routes: RouteEntry[] = [];
  // The few members of a Fastify instance used here (fastify is not a dependency of the bench).
  type Instance = { addHook(name: 'onRoute', hook: (route: { method: string | string[]; url: string }) => void): unknown };
  const onInit = (message: unknown) => {
    const fastify = (message as { fastify: Instance }).fastify;
    fastify.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) routes.push({ method: String(method), url: route.url });
    });
  };
  subscribe('fastify.initialization', onInit);
  let api;
  try {
    const env = apiEnv(redisUrl, `${prefix}-routes`, 0);
    api = await createApi(parseConfig({ redisUrl, redisPrefix: env.REDIS_PREFIX, host: '127.0.0.1', port: 0, apiKeys: env.API_KEYS, adminApiKeys: env.ADMIN_API_KEYS }), {
      logger: pino({ level: 'silent' }),
    });
    await api.app.ready();
  } finally {
    unsubscribe('fastify.initialization', onInit);
    await api?.close();
  }
  const seen = new Set<string>();
  return routes.filter((route) => {
    const key = `${route.method} ${route.url}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

async function json(url: string, init: RequestInit = {}): Promise<{ status: number; body: any }> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: response.status, body };
}

/** Starts the processes, waits for the fleet, and creates one finished job per tenant. */
export async function startFuzzTarget(options: FuzzTargetOptions): Promise<FuzzTarget> {
  const { redisUrl, prefix } = options;
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const routes = await collectRoutes(redisUrl, prefix);
  const children: Child[] = [];
  const errors = new Map<string, number>();
  let apiChild: Child | undefined;
  let stderrTail: string[] = [];
  let gcWaiters: Array<() => void> = [];

  const forward = (child: Child, onLine?: (line: string) => void) => {
    createInterface({ input: child.process.stderr! }).on('line', (line) => {
      if (onLine) onLine(line);
      else log(`[${child.name}] ${line}`);
    });
  };

  const simPort = await freePort();
  const apiPort = await freePort();
  const base = `http://127.0.0.1:${apiPort}`;
  const adminHeaders = { Authorization: `Bearer ${FUZZ_KEYS.admin.key}` };

  const startApiChild = () => {
    const child = startChild('api', 'api', [], apiEnv(redisUrl, prefix, apiPort), ['--expose-gc', `--import=data:text/javascript,${encodeURIComponent(GC_HOOK)}`]);
    stderrTail = [];
    forward(child, (line) => {
      if (line === GC_DONE) {
        const waiters = gcWaiters;
        gcWaiters = [];
        for (const waiter of waiters) waiter();
        return;
      }
      stderrTail.push(line);
      if (stderrTail.length > 50) stderrTail.shift();
      log(`[api] ${line}`);
    });
    createInterface({ input: child.process.stdout! }).on('line', (line) => {
      let entry: { level?: number; msg?: string; err?: { message?: string; type?: string } };
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if ((entry.level ?? 0) < 50) return;
      const message = `${entry.msg ?? ''}${entry.err ? `: ${entry.err.type ?? 'Error'}: ${entry.err.message ?? ''}` : ''}`.slice(0, 300);
      errors.set(message, (errors.get(message) ?? 0) + 1);
    });
    apiChild = child;
    return child;
  };

  const healthy = async () => {
    const [health, ready] = await Promise.all([fetch(`${base}/healthz`), fetch(`${base}/readyz`)]);
    return health.status === 200 && ready.status === 200;
  };

  try {
    const sim = startChild('gpu-sim', 'gpu-sim', ['--port', String(simPort), '--time-scale', '0', '--log-level', 'warn'], {});
    children.push(sim);
    forward(sim);
    await waitFor('gpu-sim answering', async () => (await fetch(`http://127.0.0.1:${simPort}/api/version`)).ok);
    const agent = startChild('agent', 'agent', [], {
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix,
      BACKEND_URL: `http://127.0.0.1:${simPort}`,
      AGENT_ID: `${prefix}-agent`,
      HEARTBEAT_INTERVAL_MS: '200',
      INVENTORY_REFRESH_MS: '500',
      PLACEMENT_INTERVAL_MS: '100',
    });
    children.push(agent);
    forward(agent);
    children.push(startApiChild());
    await waitFor('the API ready', healthy);
    await waitFor(`an agent serving ${MODEL}`, async () => {
      const models = await json(`${base}/v1/models`, { headers: { Authorization: `Bearer ${FUZZ_KEYS.tenantA.key}` } });
      return models.status === 200 && models.body.data.some((model: { id: string; servable: boolean }) => model.id === MODEL && model.servable);
    });

    // One finished job per tenant, for the cases that read, stream or cancel a job.
    const finishedJob = async (key: string) => {
      const submitted = await json(`${base}/v1/jobs`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt: 'fuzz fixture', options: { num_predict: 2 }, detach: true }),
      });
      if (submitted.status !== 202) throw new Error(`fixture job refused: ${submitted.status} ${JSON.stringify(submitted.body)}`);
      const id = submitted.body.id as string;
      await waitFor(`fixture job ${id} finished`, async () => {
        const job = await json(`${base}/v1/jobs/${id}`, { headers: { Authorization: `Bearer ${key}` } });
        return job.body.status === 'completed';
      });
      return id;
    };
    const values: Placeholders = {
      HOST: `127.0.0.1:${apiPort}`,
      KEY_A: FUZZ_KEYS.tenantA.key,
      KEY_B: FUZZ_KEYS.tenantB.key,
      KEY_ADMIN: FUZZ_KEYS.admin.key,
      JOB_A: await finishedJob(FUZZ_KEYS.tenantA.key),
      JOB_B: await finishedJob(FUZZ_KEYS.tenantB.key),
      MODEL,
      QUEUE: modelToQueueName(MODEL),
    };
    const redis = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 3 });
    // Make sure the admin key works before anything else relies on it.
    const agents = await json(`${base}/v1/agents`, { headers: adminHeaders });
    if (agents.status !== 200) throw new Error(`the admin key does not open /v1/agents: ${agents.status}`);

    return {
      port: apiPort,
      values,
      routes,
      prefix,
      jobKeyCount: async () => (await redis.keys(`${prefix}:job:{*}`)).length,
      alive: () => apiChild !== undefined && apiChild.process.exitCode === null && apiChild.process.signalCode === null,
      exitInfo: () => {
        const proc = apiChild?.process;
        if (!proc || (proc.exitCode === null && proc.signalCode === null)) return undefined;
        return `exit code ${proc.exitCode}, signal ${proc.signalCode}`;
      },
      stderrTail: () => [...stderrTail],
      restart: async () => {
        if (apiChild) await stopChild(apiChild);
        children.push(startApiChild());
        await waitFor('the restarted API ready', healthy);
      },
      rssAfterGc: async () => {
        const proc = apiChild!.process;
        const done = new Promise<void>((resolveGc) => gcWaiters.push(resolveGc));
        proc.kill('SIGUSR2');
        await Promise.race([done, sleep(10_000).then(() => Promise.reject(new Error('the API did not report its garbage collection within 10 s')))]);
        const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8');
        const match = /VmRSS:\s+(\d+) kB/.exec(status);
        return match ? Number(match[1]) * 1024 : Number.NaN;
      },
      errorLogs: () => [...errors].map(([message, count]) => ({ message, count })),
      healthy: () => healthy().catch(() => false),
      close: async () => {
        for (const child of [...children].reverse()) await stopChild(child).catch(() => undefined);
        // This run's keys are of no use to anyone afterwards.
        for (const pattern of [`${prefix}:*`, `${prefix}-routes:*`]) {
          let cursor = '0';
          do {
            const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
            cursor = next;
            if (keys.length > 0) await redis.unlink(...keys);
          } while (cursor !== '0');
        }
        redis.disconnect();
      },
    };
  } catch (error) {
    for (const child of [...children].reverse()) await stopChild(child).catch(() => undefined);
    throw error;
  }
}
