import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../support/stack.js';
import { REPO_ROOT, buildWorkspacePackages } from '../support/workspace-build.js';

const MODEL = 'qwen2.5:0.5b';
const CLI = join(REPO_ROOT, 'apps/cli/dist/main.js');
const ADMIN_KEY = 'cli-admin-key-0123456789';

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI as a user would (`node apps/cli/dist/main.js …`). */
function cli(args: string[], env: Record<string, string>): Promise<CliRun> {
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

describe('switchyard keys against a running stack', () => {
  let stack: Stack;
  let env: Record<string, string>;
  const jobStatus = async (key: string) =>
    (
      await fetch(`${stack.apiUrl}/v1/jobs`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt: 'hi', options: { num_predict: 1 } }),
      })
    ).status;

  beforeAll(async () => {
    await buildWorkspacePackages('@switchyard/cli...');
    stack = await startStack({ api: { adminApiKeys: ADMIN_KEY } });
    env = { SWITCHYARD_URL: stack.apiUrl, SWITCHYARD_API_KEY: ADMIN_KEY };
  }, 120_000);
  afterAll(() => stack?.close());

  it('create prints the key alone on stdout (what it is on stderr); the key works at once', async () => {
    const created = await cli(['keys', 'create', 'acme', '--name', 'ci', '--in-flight', '3', '--model-in-flight', '2'], env);
    expect(created.code, created.stderr).toBe(0);
    const key = created.stdout.trim();
    expect(created.stdout).toMatch(/^sy_[A-Za-z0-9_-]{43}\n$/);
    expect(created.stderr).toMatch(/created key k_[A-Za-z0-9_-]+ \(sy_.{7}…\) of tenant acme, "ci"\. Store the key now: it is not shown again\./);
    expect(await jobStatus(key)).toBe(202);

    const listed = await cli(['keys', 'list'], env);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/ID\s+PREFIX\s+TENANT\s+ADMIN\s+NAME\s+SOURCE\s+CREATED\s+ROTATED\s+LIMITS/);
    expect(listed.stdout).toMatch(/config-0\s+-\s+admin\s+yes\s+ADMIN_API_KEYS\s+config/);
    expect(listed.stdout).toMatch(new RegExp(`k_\\S+\\s+${key.slice(0, 10).replace(/[-_]/g, '\\$&')}\\s+acme\\s+no\\s+ci\\s+redis\\s+.+in_flight=3 model_in_flight=2`));
    expect(listed.stdout).not.toContain(key);

    const json = await cli(['keys', 'list', '--json'], env);
    expect(json.code).toBe(0);
    const keys = JSON.parse(json.stdout).keys as Array<Record<string, unknown>>;
    expect(keys).toContainEqual(expect.objectContaining({ tenant: 'acme', name: 'ci', source: 'redis', limits: { in_flight: 3, model_in_flight: 2 } }));
    expect(json.stdout).not.toContain(key);
  });

  it('rotate gives a new key and ends the old one (at once, or after --grace); revoke ends it; --json for scripts', async () => {
    const created = JSON.parse((await cli(['keys', 'create', 'rotor', '--json'], env)).stdout);
    expect(created).toMatchObject({ key: expect.stringMatching(/^sy_/), id: expect.stringMatching(/^k_/), tenant: 'rotor', admin: false });

    const rotated = await cli(['keys', 'rotate', created.id], env);
    expect(rotated.code, rotated.stderr).toBe(0);
    const newKey = rotated.stdout.trim();
    expect(rotated.stderr).toMatch(/rotated key .* the old key no longer works/);
    expect(await jobStatus(created.key)).toBe(401);
    expect(await jobStatus(newKey)).toBe(202);

    const graced = await cli(['keys', 'rotate', created.id, '--grace', '30', '--json'], env);
    expect(graced.code, graced.stderr).toBe(0);
    const gracedJson = JSON.parse(graced.stdout);
    expect(gracedJson.previous).toMatchObject({ prefix: newKey.slice(0, 10) });
    expect(await jobStatus(newKey)).toBe(202);
    expect(await jobStatus(gracedJson.key)).toBe(202);

    const revoked = await cli(['keys', 'revoke', created.id], env);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(new RegExp(`revoked key ${created.id.replace(/[-_]/g, '\\$&')} .* of tenant rotor`));
    expect(await jobStatus(gracedJson.key)).toBe(401);
    expect(await jobStatus(newKey)).toBe(401);
  });

  it('exits 3 when the API refuses (unknown id, configured key, no or a tenant key), 2 on usage errors and 400s', async () => {
    const missing = await cli(['keys', 'revoke', 'k_nope'], env);
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/not_found: no API key k_nope/);

    const configured = await cli(['keys', 'rotate', 'config-0'], env);
    expect(configured.code).toBe(3);
    expect(configured.stderr).toMatch(/key_not_revocable: .*ADMIN_API_KEYS/);

    const anonymous = await cli(['keys', 'list'], { SWITCHYARD_URL: stack.apiUrl });
    expect(anonymous.code).toBe(3);
    expect(anonymous.stderr).toMatch(/unauthorized/);
    const tenantKey = (await cli(['keys', 'create', 'plain'], env)).stdout.trim();
    const forbidden = await cli(['keys', 'list', '--api-key', tenantKey], { SWITCHYARD_URL: stack.apiUrl });
    expect(forbidden.code).toBe(3);
    expect(forbidden.stderr).toMatch(/forbidden/);

    const badTenant = await cli(['keys', 'create', 'bad name'], env);
    expect(badTenant.code).toBe(2);
    expect(badTenant.stderr).toMatch(/invalid_request: .*tenant/);

    for (const args of [
      ['keys'],
      ['keys', 'frob'],
      ['keys', 'create'],
      ['keys', 'rotate'],
      ['keys', 'revoke'],
      ['keys', 'list', 'extra'],
      ['keys', 'list', '--grace', '5'],
      ['keys', 'rotate', 'k_x', '--grace', 'soon'],
      ['keys', 'create', 'acme', '--in-flight', '-1'],
    ]) {
      const result = await cli(args, env);
      expect(result.code, `switchyard ${args.join(' ')}: ${result.stderr}`).toBe(2);
      expect(result.stderr.length).toBeGreaterThan(0);
    }
    const help = await cli(['--help'], {});
    expect(help.stdout).toMatch(/switchyard keys create <tenant>/);
  });

  it('drain and drain --undo tell an agent to stop and resume claiming; an unknown agent is exit 3', async () => {
    const agent = stack.agents[0]!;
    const drained = await cli(['drain', agent.id], env);
    expect(drained.code, drained.stderr).toBe(0);
    expect(drained.stdout).toMatch(new RegExp(`^agent ${agent.id}: draining; it claims nothing more`));
    await expect.poll(() => agent.heartbeat().state, { timeout: 5_000 }).toBe('draining');
    const undone = await cli(['drain', agent.id, '--undo', '--json'], env);
    expect(undone.code, undone.stderr).toBe(0);
    expect(JSON.parse(undone.stdout)).toMatchObject({ id: agent.id, action: 'undrain' });
    await expect.poll(() => agent.heartbeat().state, { timeout: 5_000 }).toBe('ready');
    const unknown = await cli(['drain', 'no-such-agent'], env);
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/agent_not_found/);
  });
});
