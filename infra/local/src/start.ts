#!/usr/bin/env node
/**
 * `pnpm start`: the whole of Switchyard on one machine, on built-in defaults.
 *
 * Redis: REDIS_URL if set, else a redis-server from PATH on a free port, else a message
 * saying how to get one. Backends: with OLLAMA_URL, one agent in front of that Ollama;
 * otherwise two simulated GPU nodes (24 GB and 80 GB) with an agent each. Then the API on
 * PORT (8080). Ctrl-C stops everything, API first so no new work arrives while agents
 * finish theirs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { findOnPath, freePort, spawnRedisServer, type RedisHandle } from '@switchyard/testing/redis-server';
import { SIM_NODES } from './sim-nodes.js';

const root = resolve(fileURLToPath(import.meta.url), '../../../..');
const appMain = (app: string) => join(root, 'apps', app, 'dist', 'main.js');

interface Child {
  name: string;
  process: ChildProcess;
}

const children: Child[] = [];
let redis: RedisHandle | undefined;
let shuttingDown = false;
const workDir = mkdtempSync(join(tmpdir(), 'switchyard-'));
const logLevel = process.env.LOG_LEVEL ?? 'warn';

function say(message: string): void {
  process.stdout.write(`${message}\n`);
}

function run(name: string, script: string, args: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, [script, ...args], {
    env: { ...process.env, LOG_LEVEL: logLevel, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const prefix = `[${name}] `;
  const forward = (stream: NodeJS.WritableStream) => (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n')) if (line.trim()) stream.write(prefix + line + '\n');
  };
  child.stdout?.on('data', forward(process.stdout));
  child.stderr?.on('data', forward(process.stderr));
  child.on('exit', (code, signal) => {
    if (shuttingDown) return;
    say(`${name} exited (${signal ?? `code ${code}`}); stopping the stack`);
    void shutdown(1);
  });
  const entry = { name, process: child };
  children.push(entry);
  return entry;
}

async function waitForHttp(url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

async function stop(child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return;
  const exited = new Promise((resolve) => child.process.once('exit', resolve));
  child.process.kill('SIGTERM');
  const timer = setTimeout(() => child.process.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function shutdown(code: number): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  say('\nstopping…');
  const order = ['api', ...children.map((c) => c.name).filter((n) => n.startsWith('agent')), ...children.map((c) => c.name).filter((n) => n.startsWith('gpu-sim'))];
  for (const name of order) {
    const child = children.find((c) => c.name === name);
    if (child) await stop(child);
  }
  await redis?.stop();
  rmSync(workDir, { recursive: true, force: true });
  say('stopped');
  process.exit(code);
}

process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

async function main(): Promise<void> {
  if (process.env.REDIS_URL) {
    redis = { url: process.env.REDIS_URL, source: 'env', stop: async () => undefined };
  } else if (findOnPath('redis-server')) {
    redis = await spawnRedisServer();
  } else {
    say(
      'Switchyard needs Redis and none was found.\n' +
        '  - set REDIS_URL=redis://host:6379 to use one you have, or\n' +
        '  - install redis-server (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install redis)\n' +
        '    and run `pnpm start` again: it starts one on a free port by itself.',
    );
    process.exit(1);
  }
  const redisEnv = { REDIS_URL: redis.url };
  const port = process.env.PORT ?? '8080';

  const backends: Array<{ name: string; url: string }> = [];
  if (process.env.OLLAMA_URL) {
    backends.push({ name: 'ollama', url: process.env.OLLAMA_URL });
  } else {
    for (const node of SIM_NODES) {
      const simPort = await freePort();
      const configPath = join(workDir, `${node.name}.json`);
      writeFileSync(configPath, JSON.stringify({ ...node.config, host: '127.0.0.1', port: simPort }, null, 2));
      run(node.name, appMain('gpu-sim'), ['--config', configPath], {});
      const url = `http://127.0.0.1:${simPort}`;
      await waitForHttp(`${url}/api/version`);
      backends.push({ name: node.name, url });
    }
  }
  for (const [index, backend] of backends.entries()) {
    run(`agent-${index + 1}`, appMain('agent'), [], {
      ...redisEnv,
      BACKEND_URL: backend.url,
      AGENT_ID: `local-${backend.name}`,
      // The simulators run Ollama's defaults for a sim node: 4 parallel requests per model,
      // 3 models resident; the agent must know them to never queue work inside a backend.
      ...(SIM_NODES[index] &&
        !process.env.OLLAMA_URL && {
          GPU_VRAM: String(SIM_NODES[index].config.vram_bytes),
          GPU_NAME: SIM_NODES[index].config.gpu_name,
          BACKEND_NUM_PARALLEL: '4',
          BACKEND_MAX_LOADED_MODELS: '3',
        }),
    });
  }
  run('api', appMain('api'), [], { ...redisEnv, PORT: port, HOST: process.env.HOST ?? '127.0.0.1' });
  const api = `http://127.0.0.1:${port}`;
  await waitForHttp(`${api}/readyz`);
  // Agents announce themselves with their first heartbeat; wait until the fleet has them.
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    const agents = (await fetch(`${api}/v1/agents`).then((r) => r.json())) as { data: unknown[] };
    if (agents.data.length >= backends.length) break;
    await sleep(200);
  }

  say(`
Switchyard is running.
  API          ${api}
  Bull Board   ${api}/admin/queues
  Metrics      ${api}/metrics
  Redis        ${redis.url} (${redis.source === 'env' ? 'from REDIS_URL' : 'spawned for this run'})
  Backends     ${backends.map((b) => `${b.name} ${b.url}`).join(', ')}

Try it:
  curl -s ${api}/v1/jobs -H 'content-type: application/json' \\
    -d '{"model":"qwen2.5:0.5b","prompt":"Why is the sky blue?"}'
  curl -N ${api}/v1/jobs/<id>/events

Ctrl-C stops everything.`);
}

main().catch((error) => {
  say(`could not start the stack: ${(error as Error).message}`);
  void shutdown(1);
});
