/**
 * The processes of the chaos run and the faults done to them: every app from its built
 * `dist/main.js` (as an operator runs it), a private redis-server with the append-only file
 * in a temp dir, each restartable on the same port (and dir) so clients and agents find it
 * again at the address they were given. Every child is tracked, and whatever ends the run
 * (the end, an error, the hard timeout, Ctrl-C, SIGTERM) kills them all (SIGCONT first, so
 * a stopped one dies too) and removes the temp dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { APPS_ROOT } from '../perf/harness.js';

const children = new Set<ChildProcess>();
const tempDirs = new Set<string>();

/** Kills every child and removes the temp dirs; synchronous, so it also runs in an `exit` handler. */
export function killEverything(): void {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null) continue;
    try {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

/** A temp dir removed with everything else at the end of the run. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

/** Where each process's output goes: a file per process (and per incarnation) in `dir`. */
export class LogFiles {
  private readonly counts = new Map<string, number>();
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }
  open(name: string): { fd: number; path: string } {
    const n = (this.counts.get(name) ?? 0) + 1;
    this.counts.set(name, n);
    const path = join(this.dir, `${name}.${n}.log`);
    return { fd: openSync(path, 'a'), path };
  }
}

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/**
 * One service of the run (an API replica, an agent, a simulator, Redis): started by `spawn`,
 * killed or stopped by a fault, started again the same way.
 */
export class Service {
  child: ChildProcess | undefined;
  /** pid of each incarnation, for the record. */
  readonly pids: number[] = [];
  private stopped = false;

  constructor(
    readonly name: string,
    private readonly launch: () => ChildProcess,
    /** Resolves once the freshly started process serves (its port answers). */
    private readonly ready: () => Promise<void>,
  ) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  alive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Starts the process; resolves when it serves. */
  async start(): Promise<void> {
    this.child = track(this.launch());
    this.stopped = false;
    if (this.child.pid !== undefined) this.pids.push(this.child.pid);
    await this.ready();
  }

  /** `kill -9`; resolves once the process is gone. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child || !this.alive()) return;
    const gone = exited(child);
    if (this.stopped) child.kill('SIGCONT');
    child.kill('SIGKILL');
    await gone;
  }

  /** SIGSTOP: the process keeps its sockets open and answers nothing. */
  pause(): void {
    if (this.child && this.alive()) {
      this.child.kill('SIGSTOP');
      this.stopped = true;
    }
  }

  resume(): void {
    if (this.child && this.alive()) {
      this.child.kill('SIGCONT');
      this.stopped = false;
    }
  }

  /** Waits for the process to exit by itself (Redis after SHUTDOWN). */
  async exited(): Promise<void> {
    if (this.child) await exited(this.child);
  }
}

/** Polls `url` until it answers 2xx. */
export async function waitForHttp(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await response.body?.cancel();
      if (response.ok) return;
    } catch {
      // not up yet
    }
    await sleep(50);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

/** Starts `node apps/<app>/dist/main.js` with `env` (on top of PATH only) and its output in a log file. */
export function nodeApp(logs: LogFiles, name: string, app: 'api' | 'agent' | 'gpu-sim', env: Record<string, string>, args: string[] = []): ChildProcess {
  const log = logs.open(name);
  const child = spawn(process.execPath, [join(APPS_ROOT, 'apps', app, 'dist', 'main.js'), ...args], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', log.fd, log.fd],
  });
  closeSync(log.fd);
  return child;
}

export async function pingRedis(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    // No ready check: ioredis would wait out the LOADING estimate (up to a second) before
    // resolving; a PING answered PONG is the moment the server serves (LOADING is an error).
    const client = new Redis(url, { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
      return;
    } catch (error) {
      last = error;
      await sleep(10);
    } finally {
      client.disconnect();
    }
  }
  throw new Error(`Redis at ${url} did not answer within ${timeoutMs} ms: ${String(last)}`);
}

/**
 * redis-server as production runs it (docs/operations.md): `appendonly yes`, `appendfsync
 * everysec`, `noeviction`, no RDB snapshots, its own dir and port, loopback only. A restart
 * loads the AOF from the same dir.
 */
export function redisService(logs: LogFiles, port: number, dir: string): Service & { url: string } {
  const url = `redis://127.0.0.1:${port}`;
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'everysec',
    '--save',
    '',
    '--maxmemory-policy',
    'noeviction',
    '--daemonize',
    'no',
  ];
  const service = new Service(
    'redis',
    () => {
      const log = logs.open('redis');
      const child = spawn('redis-server', args, { stdio: ['ignore', log.fd, log.fd], cwd: dir });
      closeSync(log.fd);
      return child;
    },
    () => pingRedis(url, 30_000),
  );
  return Object.assign(service, { url });
}

/** SHUTDOWN over a connection of its own (Redis fsyncs the AOF and exits; no reply comes). */
export async function redisShutdown(url: string): Promise<void> {
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  admin.on('error', () => undefined);
  await admin.connect();
  await admin.call('SHUTDOWN').catch(() => undefined);
  admin.disconnect();
}
