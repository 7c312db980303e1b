/**
 * `pnpm bench:fuzz`: the fuzz suite at bench scale (over 10,000 cases: the route walk with
 * every credential, and ten times the test's sampled cases), against the API, an agent and
 * gpu-sim in their own processes. Prints a summary (cases per category, statuses seen,
 * failures, RSS before and after, duration) and the distinct failures, and writes
 * bench/results/fuzz.json.
 *
 * Options: FUZZ_SEED (default fixed), FUZZ_SCALE (multiplies the sampled counts, default 1),
 * FUZZ_ONLY (ids or categories), REDIS_URL (else a redis-server of its own).
 * Exit code 0 only when no case failed.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnRedisServer } from '@switchyard/testing/redis-server';
import { generateCases, type Category } from './cases.js';
import { FuzzRun, formatFailures, formatSummary, onlyFromEnv, seedFromEnv } from './runner.js';
import { REPO_ROOT, startFuzzTarget } from './stack.js';

/** Sampled cases per category at scale 1 (the route walk and the fixed raw cases come on top). */
export const BENCH_COUNTS: Record<Exclude<Category, 'routes'>, number> = {
  bodies: 2_500,
  params: 1_200,
  query: 1_000,
  headers: 1_200,
  raw: 600,
  admin: 2_000,
};

async function main(): Promise<void> {
  const seed = seedFromEnv();
  const scale = Number(process.env.FUZZ_SCALE ?? '1');
  const counts = Object.fromEntries(Object.entries(BENCH_COUNTS).map(([category, count]) => [category, Math.round(count * scale)]));
  const startedAt = new Date();
  const load = loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');
  const redis = process.env.REDIS_URL ? undefined : await spawnRedisServer();
  const redisUrl = process.env.REDIS_URL ?? redis!.url;
  const target = await startFuzzTarget({ redisUrl, prefix: `fuzz-bench-${randomBytes(4).toString('hex')}` });
  try {
    const cases = onlyFromEnv(generateCases({ seed, counts, routes: target.routes, allCredentials: true }));
    process.stdout.write(`fuzz: seed ${seed} (FUZZ_SEED), ${cases.length} cases, ${target.routes.length} routes (method × url) in the route table\n`);
    const run = new FuzzRun(target, {
      seed,
      progress: (done) => {
        if (done % 1000 === 0) process.stdout.write(`  ${done} cases…\n`);
      },
    });
    const routes = cases.filter((fuzzCase) => fuzzCase.category === 'routes');
    const rest = cases.filter((fuzzCase) => fuzzCase.category !== 'routes');
    const rssStart = await target.rssAfterGc();
    await run.run(routes);
    const baseline = await run.measureBaseline();
    await run.run(rest);
    const report = await run.finish();
    const lines = [
      ...formatSummary(report),
      `API RSS after GC before any case: ${(rssStart / 2 ** 20).toFixed(1)} MiB`,
      '',
      ...formatFailures(report, (id) => `FUZZ_SEED=${seed} FUZZ_ONLY=${id} pnpm bench:fuzz`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
    const dir = join(REPO_ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const path = join(dir, 'fuzz.json');
    writeFileSync(
      path,
      `${JSON.stringify(
        {
          seed,
          scale,
          cases: report.cases,
          duration_s: Math.round(report.durationMs / 100) / 10,
          per_category: Object.fromEntries(
            Object.entries(report.perCategory).map(([category, entry]) => [category, { cases: entry.cases, failed: entry.failed, seconds: Math.round(entry.ms / 100) / 10 }]),
          ),
          statuses: report.statuses,
          failed: report.failed,
          failures_by_rule: report.byCheck,
          distinct_failures: report.distinct.map((failure) => ({
            signature: failure.signature,
            count: failure.count,
            example: failure.example.id,
            request: failure.example.request.slice(0, 400),
            detail: failure.example.violations.find((v) => v.check === failure.check)?.detail.slice(0, 400),
          })),
          post_checks: report.postChecks,
          crashes: report.crashes,
          rss_bytes: { before_any_case: rssStart, after_route_walk: baseline, end: report.rss.endBytes, limit: report.rss.limitBytes },
          alive_at_end: report.aliveAtEnd,
          jobs: report.jobs,
          error_logs: report.errorLogs,
          machine: {
            cpus: cpus().length,
            cpu_model: cpus()[0]?.model,
            memory_gb: Math.round(totalmem() / 2 ** 30),
            node: process.version,
            load_average_at_start: load,
            date: startedAt.toISOString(),
          },
        },
        null,
        2,
      )}\n`,
    );
    process.stdout.write(`results: ${path}\n`);
    process.exitCode = report.failed === 0 && report.postChecks.length === 0 ? 0 : 1;
  } finally {
    await target.close();
    await redis?.stop();
  }
}

await main();
