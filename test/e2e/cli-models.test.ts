import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { REPO_ROOT, buildWorkspacePackages } from '../support/workspace-build.js';

const CLI = join(REPO_ROOT, 'apps/cli/dist/main.js');
const ADMIN_KEY = 'cli-models-admin-key-0123';
/** On both sims' disks at start (their sample catalog). */
const MODEL = 'llama3.2:3b';

/** Runs the built CLI as a user would (`node apps/cli/dist/main.js …`). */
function cli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output.stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output.stderr += chunk));
  child.stdin.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) => {
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, ...output });
    });
  });
}

describe('switchyard models against a running stack', () => {
  let stack: Stack;
  let env: Record<string, string>;

  beforeAll(async () => {
    await buildWorkspacePackages('@switchyard/cli...');
    stack = await startStack({ nodes: [{}, {}], api: { adminApiKeys: ADMIN_KEY } });
    env = { SWITCHYARD_URL: stack.apiUrl, SWITCHYARD_API_KEY: ADMIN_KEY };
  }, 120_000);
  afterAll(() => stack?.close());

  it('set, list, show and rm a catalog entry', async () => {
    const set = await cli(['models', 'set', MODEL, '--copies', '1:2', '--label', 'gpu=sim'], env);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(new RegExp(`^${MODEL}: (short|pulling|ready)`));
    // No agent has the label: nothing can hold it, and the status says so.
    const shown = await cli(['models', 'show', MODEL], env);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/label gpu=sim not set/);

    const again = await cli(['models', 'set', MODEL, '--copies', '2'], env);
    expect(again.code, again.stderr).toBe(0);
    const list = await cli(['models', 'list'], env);
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/MODEL\s+STATE\s+COPIES\s+DIGESTS\s+PROGRESS\s+PROBLEMS/);
    expect(list.stdout).toMatch(new RegExp(`${MODEL.replace('.', '\\.')}\\s+ready\\s+2/2`));
    expect(list.stdout).toMatch(/qwen2\.5:0\.5b\s+unmanaged/);
    const json = JSON.parse((await cli(['models', 'list', '--json'], env)).stdout) as { models: Array<{ name: string; state: string; digests: Record<string, string[]> }> };
    const listed = json.models.find((model) => model.name === MODEL);
    expect(listed?.state).toBe('ready');
    const [digest] = Object.keys(listed!.digests);
    expect(digest).toMatch(/^[0-9a-f]{64}$/);
    expect(list.stdout).toContain(digest!.slice(0, 12));

    // Both nodes hold the build, each on a row of its own.
    const ready = await cli(['models', 'show', MODEL], env);
    expect(ready.code, ready.stderr).toBe(0);
    expect(ready.stdout).toMatch(new RegExp(`^${MODEL.replace('.', '\\.')}: ready, 2/2 copies`));
    for (const agent of stack.agents) expect(ready.stdout).toMatch(new RegExp(`${agent.id}\\s+holds\\s+${digest!.slice(0, 12)}`));

    const removed = await cli(['models', 'rm', MODEL], env);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toMatch(/unmanaged and stays/);
    // Still on both disks, now without an entry.
    const after = await cli(['models', 'show', MODEL], env);
    expect(after.code, after.stderr).toBe(0);
    expect(after.stdout).toMatch(new RegExp(`^${MODEL.replace('.', '\\.')}: unmanaged, 2 copies`));
  });

  it('names bad input: the API’s 400 for a bad digest, a 404 for an unknown entry, usage errors locally', async () => {
    const digest = await cli(['models', 'set', MODEL, '--digest', 'abc'], env);
    expect(digest.code).toBe(2);
    expect(digest.stderr).toMatch(/^switchyard: invalid_request: invalid request body: digest: digest must be a sha256: 64 hex digits/);
    const missing = await cli(['models', 'rm', 'nope:1b'], env);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/catalog_entry_not_found: the fleet catalog has no entry for "nope:1b"/);
    // A name with "/" reaches the route (URL-encoded), which answers for that name.
    const slashed = await cli(['models', 'show', 'hf.co/org/repo:Q4_K_M'], env);
    expect(slashed.code).toBe(3);
    expect(slashed.stderr).toMatch(/catalog_entry_not_found: the fleet catalog has no entry for "hf\.co\/org\/repo:Q4_K_M"/);
    const anonymous = await cli(['models', 'list'], { SWITCHYARD_URL: stack.apiUrl });
    expect(anonymous.code).toBe(3);
    expect(anonymous.stderr).toMatch(/unauthorized/);
    const copies = await cli(['models', 'set', MODEL, '--copies', 'two'], env);
    expect(copies.code).toBe(2);
    expect(copies.stderr).toMatch(/--copies takes <min> or <min>:<max>/);
    expect((await cli(['models', 'frobnicate'], env)).code).toBe(2);
    expect((await cli(['models', 'show'], env)).code).toBe(2);
  });
});
