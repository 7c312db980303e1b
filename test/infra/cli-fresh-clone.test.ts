/**
 * The CLI's documented build and install (apps/cli/README.md, "Build and install") work on a
 * fresh clone: no `dist/` anywhere, nothing built before. The test copies the files a clone
 * would have (git's tracked and unignored files of this working tree, so uncommitted work is
 * checked too) into a temporary folder, installs from pnpm's store without the network, runs
 * every command of that section's code blocks as written, and then the linked `switchyard`.
 *
 * `pnpm --filter @switchyard/cli build` is what used to be documented: on a fresh clone it
 * fails, because it does not build the SDK and protocol packages the CLI imports first.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI_VERSION } from '@switchyard/cli';
import { REPO_ROOT } from '../support/workspace-build.js';

const run = promisify(execFile);
const CLI_README = join(REPO_ROOT, 'apps/cli/README.md');
const IGNORED_DIRS = new Set(['.git', 'node_modules', 'dist', '.turbo', 'coverage', '.local', '.artifacts']);

/** The shell commands of the code blocks under "## Build and install", comments removed. */
function documentedCommands(readme: string): string[] {
  const section = /^## Build and install\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1] ?? '';
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((block) => block[1]!.split('\n'))
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/** The files a clone of this working tree would hold, relative to the root. */
async function cloneFiles(): Promise<string[]> {
  try {
    const { stdout } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO_ROOT, maxBuffer: 64 * 1024 * 1024 });
    return stdout.split('\0').filter((file) => file !== '' && existsSync(join(REPO_ROOT, file)));
  } catch {
    // Not a git checkout (an exported tree): everything but dependencies and build output.
    const walk = (dir: string): string[] =>
      readdirSync(join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
        const path = dir ? `${dir}/${entry.name}` : entry.name;
        if (entry.isDirectory()) return IGNORED_DIRS.has(entry.name) ? [] : walk(path);
        return entry.isFile() ? [path] : [];
      });
    return walk('');
  }
}

async function pnpmStore(): Promise<string | undefined> {
  try {
    const { stdout } = await run('pnpm', ['store', 'path'], { cwd: REPO_ROOT, timeout: 15_000 });
    const path = stdout.trim();
    return path !== '' && existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

function shell(command: string, cwd: string, env: NodeJS.ProcessEnv) {
  return run('sh', ['-c', command], { cwd, env, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
}

describe('the CLI on a fresh clone', () => {
  it('documents a build, a --version run and an npm link', () => {
    const commands = documentedCommands(readFileSync(CLI_README, 'utf8'));
    expect(commands.some((command) => /^pnpm .*build/.test(command))).toBe(true);
    expect(commands).toContain('node apps/cli/dist/main.js --version');
    expect(commands.some((command) => command.includes('npm link'))).toBe(true);
  });

  it('builds, runs and links as apps/cli/README.md says', { timeout: 120_000 }, async ({ skip }) => {
    const store = await pnpmStore();
    if (!store) skip("pnpm or pnpm's store is not available: the offline install this test needs cannot run");

    const scratch = mkdtempSync(join(tmpdir(), 'switchyard-fresh-'));
    try {
      const clone = join(scratch, 'switchyard');
      for (const file of await cloneFiles()) {
        mkdirSync(dirname(join(clone, file)), { recursive: true });
        cpSync(join(REPO_ROOT, file), join(clone, file));
      }
      expect(existsSync(join(clone, 'apps/cli/dist')) || existsSync(join(clone, 'packages/sdk/dist'))).toBe(false);

      // npm's global folder is the scratch one, so `npm link` touches nothing outside it.
      const prefix = join(scratch, 'npm-global');
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        FORCE_COLOR: '0',
        TURBO_TELEMETRY_DISABLED: '1',
        npm_config_prefix: prefix,
        npm_config_offline: 'true',
        npm_config_audit: 'false',
        npm_config_fund: 'false',
        npm_config_update_notifier: 'false',
      };

      try {
        await shell('pnpm install --frozen-lockfile --offline', clone, env);
      } catch (error) {
        const output = `${(error as { stdout?: string }).stdout ?? ''}${(error as { stderr?: string }).stderr ?? ''}`;
        if (/ERR_PNPM_NO_OFFLINE|offline/i.test(output)) skip(`pnpm's store at ${store} lacks packages of the lockfile (run pnpm install online once): ${output.slice(-300)}`);
        throw error;
      }

      for (const command of documentedCommands(readFileSync(join(clone, 'apps/cli/README.md'), 'utf8'))) {
        const result = await shell(command, clone, env).catch((error: { stdout?: string; stderr?: string; message: string }) => {
          throw new Error(`\`${command}\` failed on a fresh clone:\n${error.stdout ?? ''}${error.stderr ?? error.message}`);
        });
        if (command.endsWith('--version')) expect(result.stdout.trim()).toBe(`switchyard ${CLI_VERSION}`);
      }

      const linked = await run('switchyard', ['--version'], { env: { ...env, PATH: `${join(prefix, 'bin')}:${env.PATH ?? ''}` } });
      expect(linked.stdout.trim()).toBe(`switchyard ${CLI_VERSION}`);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});
