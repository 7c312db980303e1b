import { execFile } from 'node:child_process';
import { mkdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const REPO_ROOT = resolve(import.meta.dirname, '../..');
const LOCK = join(tmpdir(), 'switchyard-test-build.lock');

/**
 * Runs `pnpm --filter <filter> build` from the repository root. Test files run in parallel,
 * and two builds writing the same `dist/` at once could let one read the other's half-written
 * files, so builds take turns through a lock directory (mkdir is atomic).
 */
export async function buildWorkspacePackages(filter: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      await mkdir(LOCK);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const age =
        Date.now() -
        (await stat(LOCK).then(
          (s) => s.mtimeMs,
          () => Date.now(),
        ));
      if (age > 120_000) await rm(LOCK, { recursive: true, force: true }); // left by a killed run
      if (Date.now() > deadline) throw new Error(`waited too long for the build lock ${LOCK}`);
      await new Promise((resolveWait) => setTimeout(resolveWait, 100));
    }
  }
  try {
    await run('pnpm', ['--filter', filter, 'build'], { cwd: REPO_ROOT, timeout: 120_000, env: { ...process.env, FORCE_COLOR: '0' } });
  } finally {
    await rm(LOCK, { recursive: true, force: true });
  }
}
