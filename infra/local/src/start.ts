#!/usr/bin/env node
/**
 * `pnpm start`: the whole of Switchyard on one machine, on built-in defaults.
 *
 * Redis: REDIS_URL if set, else a redis-server from PATH on a free port, else a message
 * saying how to get one. Backends: with OLLAMA_URL, one agent in front of that Ollama;
 * otherwise two simulated GPU nodes (24 GB and 80 GB) with an agent each. Then the API on
 * PORT (8080). Ctrl-C stops everything, API first so no new work arrives while agents
 * finish theirs.
 *
 * It says "running" only once its own API answers (by pid: not whatever else holds the
 * port), Redis answers PING and the backends answer. A first-run mistake ends start-up
 * within START_TIMEOUT_MS with one line naming the setting and the fix. Exit codes:
 * - 0: stopped by Ctrl-C (SIGINT), SIGTERM or SIGHUP;
 * - 1: a part of the stack crashed, or did not come up in time for another reason;
 * - 2: a setting must change first (PORT taken, Redis or the Ollama unreachable, an invalid
 *      variable); the last line says which and how.
 * The temporary folder (simulator configs) is removed on every exit.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { findOnPath, freePort, spawnRedisServer, type RedisHandle } from '@switchyard/testing/redis-server';
import { REQUIRED_REDIS_SETTINGS } from '@switchyard/protocol';
import { StartFailure, describeRedisProblem, pingRedis, portProblem, probeHttp, redactUrl } from './probes.js';
import { SIM_NODES } from './sim-nodes.js';

const root = resolve(fileURLToPath(import.meta.url), '../../../..');
const appMain = (app: string) => join(root, 'apps', app, 'dist', 'main.js');

interface Child {
  name: string;
  process: ChildProcess;
  /** The last line it wrote to stderr: a child that refuses its settings says why there. */
  lastError?: string;
  /** How long it may take to stop before it is killed. */
  graceMs: number;
}

const children: Child[] = [];
let redis: RedisHandle | undefined;
let shuttingDown = false;
let workDir: string | undefined;
const logLevel = process.env.LOG_LEVEL ?? 'warn';

function say(message: string): void {
  process.stdout.write(`${message}\n`);
}

/** Every exit path (a normal one, a signal, an error, process.exit anywhere) passes here. */
process.on('exit', () => {
  if (workDir) rmSync(workDir, { recursive: true, force: true });
});

function positiveIntSetting(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value <= 0)
    throw new StartFailure(`${name}=${raw} is not a positive whole number of milliseconds: set ${name} to one (default ${fallback})`);
  return value;
}

function readSettings() {
  const rawPort = process.env.PORT ?? '8080';
  const port = Number(rawPort);
  if (!/^\d+$/.test(rawPort) || port < 1 || port > 65_535) throw new StartFailure(`PORT=${rawPort} is not a port number: set PORT to a number from 1 to 65535`);
  const ollamaUrl = process.env.OLLAMA_URL || undefined;
  if (ollamaUrl !== undefined && !/^https?:\/\/[^/]/.test(ollamaUrl)) {
    throw new StartFailure(`OLLAMA_URL=${ollamaUrl} is not an http:// URL: set OLLAMA_URL=http://host:11434`);
  }
  return {
    port,
    host: process.env.HOST ?? '127.0.0.1',
    ollamaUrl,
    startTimeoutMs: positiveIntSetting('START_TIMEOUT_MS', 20_000),
    // Ctrl-C should not take long: running jobs get this long, then go back to their queues.
    agentShutdownMs: positiveIntSetting('AGENT_DRAIN_TIMEOUT_MS', 5_000),
  };
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** A pino JSON line as a person reads it: `WARN message: error`; anything else as it came. */
function readable(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
    if (typeof entry.msg !== 'string' || typeof entry.level !== 'number') return line;
    // The error's words, unless the message already quotes them (pino appends causes to err.message).
    const words = entry.err?.message;
    const cause = words && !entry.msg.includes(words.split(': ')[0]!.slice(0, 40)) ? `: ${words}` : '';
    return `${LEVELS[entry.level] ?? entry.level} ${entry.msg}${cause}`;
  } catch {
    return line;
  }
}

function run(name: string, script: string, args: string[], env: Record<string, string>, graceMs: number): Child {
  const child = spawn(process.execPath, [script, ...args], {
    env: { ...process.env, LOG_LEVEL: logLevel, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const entry: Child = { name, process: child, graceMs };
  createInterface({ input: child.stdout! }).on('line', (line) => line.trim() && process.stdout.write(`[${name}] ${readable(line)}\n`));
  createInterface({ input: child.stderr! }).on('line', (line) => {
    if (!line.trim()) return;
    entry.lastError = readable(line);
    process.stderr.write(`[${name}] ${entry.lastError}\n`);
  });
  // 'close', not 'exit': by then its last stderr line has been read.
  child.on('close', (code, signal) => {
    if (shuttingDown) return;
    // Code 2 is the apps' "a setting must change" (their main.ts): pass their line on as ours.
    if (code === 2 && entry.lastError) void shutdown(2, `${name} refused to start: ${entry.lastError}`);
    else void shutdown(1, `${name} exited (${signal ?? `code ${code}`})${entry.lastError ? `: ${entry.lastError}` : ''}; stopped the stack`);
  });
  children.push(entry);
  return entry;
}

async function stop(child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  const exited = new Promise((resolve) => child.process.once('exit', resolve));
  child.process.kill('SIGTERM');
  const timer = setTimeout(() => child.process.kill('SIGKILL'), child.graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * Stops the stack (API first, so no new work arrives, then the agents, then the
 * simulators and Redis) and exits. `finalLine` is said last, where a person looks.
 */
async function shutdown(code: number, finalLine?: string): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  if (finalLine === undefined) say('\nstopping…');
  const named = (prefix: string) => children.filter((child) => child.name.startsWith(prefix));
  for (const group of [named('api'), named('agent'), named('gpu-sim')]) await Promise.all(group.map(stop));
  await redis?.stop().catch(() => undefined);
  if (finalLine === undefined) say('stopped');
  else process.stderr.write(`${finalLine}\n`);
  process.exit(code);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown(0));
process.on('uncaughtException', (error) => void shutdown(1, `the launcher failed: ${error.stack ?? error.message}`));
process.on('unhandledRejection', (error) => void shutdown(1, `the launcher failed: ${(error as Error)?.stack ?? String(error)}`));

/** Retries `attempt` until it returns a value or `deadline` passes; then undefined. */
async function until<T>(deadline: number, attempt: () => Promise<T | undefined>): Promise<T | undefined> {
  for (;;) {
    const value = await attempt();
    if (value !== undefined) return value;
    if (Date.now() >= deadline || shuttingDown) return undefined;
    await sleep(Math.min(200, Math.max(0, deadline - Date.now())));
  }
}

async function provideRedis(deadline: number, timeoutS: number, dir: string): Promise<RedisHandle> {
  const url = process.env.REDIS_URL;
  if (url) {
    if (!/^rediss?:\/\/[^/]/.test(url)) throw new StartFailure(`REDIS_URL=${redactUrl(url)} is not a redis:// URL: set REDIS_URL=redis://host:6379`);
    let lastError: unknown;
    const answered = await until(deadline, async () => {
      try {
        await pingRedis(url, Math.max(100, Math.min(2_000, deadline - Date.now())));
        return true;
      } catch (error) {
        const kind = (error as { kind?: string }).kind;
        // A wrong password or another server: waiting will not change the answer.
        if (kind === 'refused' || kind === 'not-redis') throw new StartFailure(describeRedisProblem(url, error));
        if (lastError === undefined) say(`waiting up to ${timeoutS} s for Redis at ${redactUrl(url)} (${(error as { code?: string }).code ?? (error as Error).message})…`);
        lastError = error;
        return undefined;
      }
    });
    if (!answered) throw new StartFailure(describeRedisProblem(url, lastError));
    return { url, source: 'env', stop: async () => undefined };
  }
  if (findOnPath('redis-server')) {
    try {
      // With the settings the API and agents check at start (an append-only file, in the
      // launcher's temp folder), so a first run does not open with their errors about it.
      return await spawnRedisServer(undefined, { settings: { ...REQUIRED_REDIS_SETTINGS, dir } });
    } catch (error) {
      throw new StartFailure(`could not start redis-server from PATH (${(error as Error).message}): set REDIS_URL to a Redis you have`);
    }
  }
  throw new StartFailure(
    'Switchyard needs Redis and none was found.\n' +
      '  - set REDIS_URL=redis://host:6379 to use one you have, or\n' +
      '  - install redis-server (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)\n' +
      '    and run `pnpm start` again: it starts one on a free port by itself.',
  );
}

async function main(): Promise<void> {
  const settings = readSettings();
  const deadline = Date.now() + settings.startTimeoutMs;
  const timeoutS = settings.startTimeoutMs / 1000;
  const { port, host } = settings;

  // Before anything starts: a taken port would otherwise be found by the API after the rest
  // of the stack is up — or, worse, the readiness check would reach whatever holds it.
  const taken = await portProblem(host, port);
  if (taken) throw new StartFailure(taken);

  workDir = mkdtempSync(join(tmpdir(), 'switchyard-'));
  redis = await provideRedis(deadline, timeoutS, workDir);
  const redisEnv = { REDIS_URL: redis.url };

  const backends: Array<{ name: string; url: string }> = [];
  if (settings.ollamaUrl) {
    backends.push({ name: 'ollama', url: settings.ollamaUrl });
  } else {
    // Both boot at once; the agents start once both answer.
    const sims: Array<{ name: string; url: string }> = [];
    for (const node of SIM_NODES) {
      const simPort = await freePort();
      const configPath = join(workDir, `${node.name}.json`);
      writeFileSync(configPath, JSON.stringify({ ...node.config, host: '127.0.0.1', port: simPort }, null, 2));
      run(node.name, appMain('gpu-sim'), ['--config', configPath], {}, 5_000);
      sims.push({ name: node.name, url: `http://127.0.0.1:${simPort}` });
    }
    for (const { name, url } of sims) {
      const up = await until(deadline, async () => ((await probeHttp(`${url}/api/version`)).response?.ok ? true : undefined));
      if (!up) throw new StartFailure(`the simulator ${name} did not answer at ${url} within ${timeoutS} s (START_TIMEOUT_MS)`, 1);
      backends.push({ name, url });
    }
  }
  // Each agent's /healthz, /readyz and /metrics on a port of its own, chosen here so the summary can name it
  // (and an AGENT_HTTP_PORT in the caller's environment cannot put two agents on one port).
  const agents: Array<{ id: string; url: string }> = [];
  for (const [index, backend] of backends.entries()) {
    const sim = settings.ollamaUrl ? undefined : SIM_NODES[index];
    const httpPort = await freePort();
    agents.push({ id: `local-${backend.name}`, url: `http://127.0.0.1:${httpPort}` });
    run(
      `agent-${index + 1}`,
      appMain('agent'),
      [],
      {
        ...redisEnv,
        // The agent names the variable its backend came from when it does not answer: the
        // one the user set (BACKEND_URL, read first, is blanked so it cannot shadow it).
        ...(settings.ollamaUrl ? { OLLAMA_URL: backend.url, BACKEND_URL: '' } : { BACKEND_URL: backend.url }),
        AGENT_ID: `local-${backend.name}`,
        AGENT_HTTP_HOST: '127.0.0.1',
        AGENT_HTTP_PORT: String(httpPort),
        AGENT_DRAIN_TIMEOUT_MS: String(settings.agentShutdownMs),
        // The simulators run Ollama's defaults for a sim node: 4 parallel requests per model,
        // 3 models resident; the agent must know them to never queue work inside a backend.
        ...(sim && {
          GPU_VRAM: String(sim.config.vram_bytes),
          GPU_NAME: sim.config.gpu_name,
          BACKEND_NUM_PARALLEL: '4',
          BACKEND_MAX_LOADED_MODELS: '3',
        }),
      },
      settings.agentShutdownMs + 3_000,
    );
  }
  const apiChild = run('api', appMain('api'), [], { ...redisEnv, PORT: String(port), HOST: host }, 12_000);
  // A wildcard listens on loopback too; a specific address is reached where it is.
  const reachableHost = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const api = `http://${reachableHost}:${port}`;

  if (settings.ollamaUrl) {
    const ollama = settings.ollamaUrl;
    let failure = '';
    const up = await until(deadline, async () => {
      const { response, failure: why } = await probeHttp(`${ollama.replace(/\/+$/, '')}/api/version`);
      if (response?.ok) return true;
      failure = why ?? `it answered HTTP ${response?.status} to /api/version: is it Ollama?`;
      return undefined;
    });
    if (!up)
      throw new StartFailure(
        `no Ollama answers at ${redactUrl(ollama)} (${failure}) within ${timeoutS} s — start Ollama there (ollama serve) or set OLLAMA_URL to where it listens`,
      );
  }

  // Our API, told apart by its pid: another server on the port must not pass for it.
  let otherServer = false;
  const ours = await until(deadline, async () => {
    const { response } = await probeHttp(`${api}/healthz`);
    if (!response?.ok) return undefined;
    const body = (await response.json().catch(() => ({}))) as { pid?: unknown };
    if (body.pid === apiChild.process.pid) return true;
    otherServer = true;
    return undefined;
  });
  if (!ours) {
    throw otherServer
      ? new StartFailure(`another server answers at ${api}, not the API this started: set PORT to a free port (or stop what listens there)`)
      : new StartFailure(`the API did not answer at ${api} within ${timeoutS} s (START_TIMEOUT_MS)`, 1);
  }
  let notReady = '';
  const ready = await until(deadline, async () => {
    const { response, failure } = await probeHttp(`${api}/readyz`);
    if (response?.ok) return true;
    notReady = failure ?? ((await response?.json().catch(() => ({}))) as { redis?: string }).redis ?? `HTTP ${response?.status}`;
    return undefined;
  });
  if (!ready) throw new StartFailure(`the API at ${api} is not ready within ${timeoutS} s: Redis ${notReady}`, 1);

  // Agents announce themselves with their first heartbeat; wait until the fleet has them.
  // /v1/agents is an admin route: with keys configured, the first admin key (if given here) reads it.
  const adminKey = process.env.ADMIN_API_KEYS?.split(',')[0]?.trim();
  const registered = await until(deadline, async () => {
    const { response } = await probeHttp(`${api}/v1/agents`, adminKey ? { Authorization: `Bearer ${adminKey}` } : {});
    // Keys that this launcher does not hold: it cannot look, and says nothing it did not see.
    if (response?.status === 401 || response?.status === 403) return true;
    const agents = response?.ok ? ((await response.json().catch(() => ({}))) as { data?: unknown[] }).data : undefined;
    return agents && agents.length >= backends.length ? true : undefined;
  });
  if (!registered) throw new StartFailure(`the agents did not register with the API within ${timeoutS} s (START_TIMEOUT_MS)`, 1);

  say(`
Switchyard is running.
  API          ${api}
  Bull Board   ${api}/admin/queues
  Metrics      ${api}/metrics
  Redis        ${redactUrl(redis.url)} (${redis.source === 'env' ? 'from REDIS_URL' : 'spawned for this run'})
  Backends     ${backends.map((b) => `${b.name} ${b.url}`).join(', ')}
  Agents       ${agents.map((agent) => `${agent.id} ${agent.url}/metrics`).join(', ')} (also /healthz, /readyz)

Try it:
  curl -s ${api}/v1/jobs -H 'content-type: application/json' \\
    -d '{"model":"qwen2.5:0.5b","prompt":"Why is the sky blue?"}'
  curl -N ${api}/v1/jobs/<id>/events

Ctrl-C stops everything.`);
}

main().catch((error) => {
  if (error instanceof StartFailure) void shutdown(error.exitCode, error.line);
  else void shutdown(1, `could not start the stack: ${(error as Error).stack ?? String(error)}`);
});
