/**
 * The mistakes a new user makes on the first `pnpm start`, each provoked for real against
 * the built launcher (infra/local/dist/start.js) and API: one line naming the setting and
 * the fix, and the exit code the launcher documents (2: a setting must change).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { freePort, testRedis, uniquePrefix } from '@switchyard/testing';
import { describeRedisProblem, pingRedis } from '../../infra/local/src/probes.js';
import { runNode } from '../support/node-process.js';
import { REPO_ROOT, buildWorkspacePackages } from '../support/workspace-build.js';

const LAUNCHER = join(REPO_ROOT, 'infra/local/dist/start.js');
const API = join(REPO_ROOT, 'apps/api/dist/main.js');

/** A port something else listens on, as when another stack already runs. */
async function holdPort(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as { port: number }).port, server };
}

const lines = (text: string) => text.split('\n').filter((line) => line.trim() !== '');

// One after the other: two whole stacks at once would crowd a small machine.
describe('first-run mistakes', () => {
  let scratch: string;
  beforeAll(async () => {
    await buildWorkspacePackages('@switchyard/local-stack...');
    scratch = mkdtempSync(join(tmpdir(), 'first-run-'));
  }, 120_000);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  /** A TMPDIR of its own for one launcher, to see what it leaves behind. */
  const tempDirFor = (name: string) => mkdtempSync(join(scratch, `${name}-`));

  it('the API on a taken port says so in one line and exits 2', async ({ expect, onTestFinished }) => {
    const { port, server } = await holdPort();
    onTestFinished(() => void server.close());
    const api = runNode(API, { REDIS_URL: testRedis(), REDIS_PREFIX: uniquePrefix('first-run'), HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'silent' });
    const exit = await api.exited;
    expect(exit.code).toBe(2);
    expect(exit.stderr).toBe(`port ${port} is already in use: set PORT to a free port (or stop what listens there)\n`);
    expect(exit.stdout).toBe('');
  });

  it('the launcher refuses a taken port before starting anything, and never says it is running', async ({ expect, onTestFinished }) => {
    const { port, server } = await holdPort();
    onTestFinished(() => void server.close());
    const temp = tempDirFor('port');
    const launcher = runNode(LAUNCHER, { REDIS_URL: testRedis(), PORT: String(port), TMPDIR: temp });
    const exit = await launcher.exited;
    expect(exit.code).toBe(2);
    expect(lines(exit.stderr)).toEqual([`port ${port} is already in use: set PORT to a free port (or stop what listens there)`]);
    expect(exit.stdout).toBe('');
    expect(readdirSync(temp)).toEqual([]);
  });

  it('the launcher names Redis and REDIS_URL when it does not answer, and exits 2 at its start timeout', async ({ expect }) => {
    const temp = tempDirFor('redis');
    const launcher = runNode(LAUNCHER, { REDIS_URL: 'redis://127.0.0.1:1', PORT: String(await freePort()), START_TIMEOUT_MS: '1000', TMPDIR: temp });
    const exit = await launcher.exited;
    expect(exit.code).toBe(2);
    expect(lines(exit.stderr)).toEqual(['cannot reach Redis at redis://127.0.0.1:1: ECONNREFUSED — start Redis or set REDIS_URL']);
    // At most the note that it waits: no flood of connection warnings, nothing else started.
    expect(lines(exit.stdout)).toEqual(['waiting up to 1 s for Redis at redis://127.0.0.1:1 (ECONNREFUSED)…']);
    expect(readdirSync(temp)).toEqual([]);
  });

  // The agent's own warning (agent-process.test.ts) is passed on too when it comes before the
  // deadline; that race is the agent's boot time against START_TIMEOUT_MS, so not asserted here.
  it('the launcher names OLLAMA_URL when no Ollama answers within its start timeout, exiting 2', async ({ expect }) => {
    const nothing = await freePort();
    const launcher = runNode(LAUNCHER, {
      REDIS_URL: testRedis(),
      REDIS_PREFIX: uniquePrefix('first-run'),
      PORT: String(await freePort()),
      OLLAMA_URL: `http://127.0.0.1:${nothing}`,
      START_TIMEOUT_MS: '2000',
      TMPDIR: tempDirFor('ollama'),
    });
    const exit = await launcher.exited;
    expect(exit.code).toBe(2);
    expect(lines(exit.stderr).at(-1)).toBe(
      `no Ollama answers at http://127.0.0.1:${nothing} (ECONNREFUSED) within 2 s — start Ollama there (ollama serve) or set OLLAMA_URL to where it listens`,
    );
    expect(exit.stdout).not.toContain('Switchyard is running');
  });

  describe('a stack that started', () => {
    /** A launcher on the simulators, once it says it runs; with its API's URL and temporary folder. */
    const startStack = async (name: string, onTestFinished: (fn: () => void) => void) => {
      const temp = tempDirFor(name);
      const port = await freePort();
      // A generous start timeout: these tests are about stopping, not about a slow machine.
      const launcher = runNode(
        LAUNCHER,
        { REDIS_URL: testRedis(), REDIS_PREFIX: uniquePrefix('first-run'), PORT: String(port), TMPDIR: temp, START_TIMEOUT_MS: '60000' },
        90_000,
      );
      // A test that fails half-way must not leave a stack behind: SIGTERM lets it stop its children.
      onTestFinished(() => launcher.kill('SIGTERM'));
      await launcher.line('stdout', /^Switchyard is running\.$/);
      return { launcher, temp, api: `http://127.0.0.1:${port}` };
    };

    // About 3 s each on an idle machine; the timeout leaves room for a busy one.
    it('removes its temporary folder when stopped with SIGTERM, and exits 0', { timeout: 60_000 }, async ({ expect, onTestFinished }) => {
      const { launcher, temp, api } = await startStack('sigterm', onTestFinished);
      // The simulators' configs live there while the stack runs…
      expect(readdirSync(temp)).toHaveLength(1);
      // …and the API that answers is the one it started.
      const health = (await (await fetch(`${api}/healthz`)).json()) as { pid: number };
      expect(typeof health.pid).toBe('number');
      launcher.kill('SIGTERM');
      const exit = await launcher.exited;
      expect(exit.code).toBe(0);
      expect(readdirSync(temp)).toEqual([]);
    });

    it('stops the stack, removes its temporary folder and exits 1 when a part of it dies', { timeout: 60_000 }, async ({ expect, onTestFinished }) => {
      const { launcher, temp, api } = await startStack('crash', onTestFinished);
      const { pid } = (await (await fetch(`${api}/healthz`)).json()) as { pid: number };
      process.kill(pid, 'SIGKILL');
      const exit = await launcher.exited;
      expect(exit.code).toBe(1);
      expect(lines(exit.stderr).at(-1)).toBe('api exited (SIGKILL); stopped the stack');
      expect(readdirSync(temp)).toEqual([]);
    });
  });
});

describe('the launcher’s Redis check', () => {
  const problem = (url: string) =>
    pingRedis(url, 2_000).then(
      () => 'answered',
      (error: unknown) => describeRedisProblem(url, error),
    );

  it('passes a Redis that answers PING, and words each way one can fail as the line to print', async ({ expect }) => {
    expect(await problem(testRedis())).toBe('answered');
    const closed = await freePort();
    expect(await problem(`redis://127.0.0.1:${closed}`)).toBe(`cannot reach Redis at redis://127.0.0.1:${closed}: ECONNREFUSED — start Redis or set REDIS_URL`);
    // A password this Redis does not have: it answers, and says why, with the password masked.
    const withPassword = new URL(testRedis());
    withPassword.password = 'not-the-password';
    expect(await problem(withPassword.toString())).toMatch(/^Redis at redis:\/\/:\*\*\*@[^ ]+ (refused the credentials|answered with an error) \(.*AUTH.*\) — .*REDIS_URL/);
    // Something else on the port (another service's HTTP server, say).
    const { port, server } = await holdPort();
    server.on('connection', (socket) => socket.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    try {
      expect(await problem(`redis://127.0.0.1:${port}`)).toBe(
        `what answers at redis://127.0.0.1:${port} is not Redis (it said "HTTP/1.1 400 Bad Request") — set REDIS_URL to a Redis`,
      );
    } finally {
      server.close();
    }
  });
});
