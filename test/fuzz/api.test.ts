/**
 * The fuzz suite, seeded subset (security issue): every route with every method, bodies
 * with wrong types, broken JSON, bad bytes, deep nesting, huge values and prototype keys,
 * path parameters, query strings, headers and raw-socket abuse, and the admin routes under
 * every spelling — against the API (in its own process), an agent and gpu-sim, with keys for
 * two tenants and an admin key.
 *
 * Generators, checks and runner live in bench/fuzz (`@switchyard/bench/fuzz`), shared with
 * `pnpm bench:fuzz`, which runs ten times as many cases.
 *
 * Reproducible: a fixed seed unless FUZZ_SEED says otherwise; each failure prints the case
 * id, which with the seed replays it: `FUZZ_SEED=<seed> FUZZ_ONLY=<id> pnpm vitest run test/fuzz`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import {
  CATEGORIES,
  FuzzRun,
  failureLines,
  formatFailures,
  formatSummary,
  generateCases,
  groupFailures,
  onlyFromEnv,
  seedFromEnv,
  startFuzzTarget,
  type Category,
  type FuzzCase,
  type FuzzTarget,
} from '@switchyard/bench/fuzz';

/** Sampled cases per category (the route walk, every route × every method, comes on top). */
const TEST_COUNTS: Record<Exclude<Category, 'routes'>, number> = {
  bodies: 250,
  params: 120,
  query: 100,
  headers: 120,
  raw: 60,
  admin: 200,
};

const seed = seedFromEnv();
const replay = (id: string) => `FUZZ_SEED=${seed} FUZZ_ONLY=${id} pnpm vitest run test/fuzz`;

describe(`fuzz: the API under hostile input (seed ${seed})`, () => {
  let target: FuzzTarget;
  let run: FuzzRun;
  let cases: FuzzCase[];

  beforeAll(async () => {
    target = await startFuzzTarget({ redisUrl: testRedis(), prefix: uniquePrefix('fuzz') });
    cases = onlyFromEnv(generateCases({ seed, counts: TEST_COUNTS, routes: target.routes, allCredentials: false }));
    run = new FuzzRun(target, { seed });
    console.log(`fuzz: seed ${seed} (set FUZZ_SEED to change it), ${cases.length} cases, ${target.routes.length} routes in the route table`);
  }, 120_000);

  afterAll(async () => {
    await target?.close();
  });

  it('walks a route table that has every documented route', () => {
    const table = new Set(target.routes.map((route) => `${route.method} ${route.url}`));
    for (const route of [
      'POST /v1/jobs',
      'GET /v1/jobs/:id',
      'DELETE /v1/jobs/:id',
      'GET /v1/jobs/:id/events',
      'GET /v1/models',
      'GET /v1/agents',
      'GET /metrics',
      'GET /admin/limits',
      'PUT /admin/limits',
      'GET /admin/queues',
      'POST /v1/chat/completions',
      'POST /v1/completions',
      'GET /v1/models/*',
      'POST /api/chat',
      'POST /api/generate',
      'GET /api/tags',
      'GET /api/ps',
      'POST /api/show',
      'GET /api/version',
    ]) {
      expect(table, route).toContain(route);
    }
  });

  for (const category of CATEGORIES) {
    it(`${category}: complete answers, no 5xx, documented error shapes naming the field, no job from a refused request, no admin or tenant leak`, async () => {
      const mine = cases.filter((fuzzCase) => fuzzCase.category === category);
      const outcomes = await run.run(mine);
      // The route walk touched every route once: the RSS baseline is taken after it.
      if (category === 'routes') await run.measureBaseline();
      const lines = failureLines(groupFailures(outcomes), replay);
      if (lines.length > 0)
        console.log(
          `fuzz ${category} (seed ${seed}): ${outcomes.filter((outcome) => outcome.violations.length > 0).length} of ${outcomes.length} cases failing\n${lines.join('\n')}`,
        );
      expect(lines, `seed ${seed}: distinct failures among ${outcomes.length} ${category} cases`).toEqual([]);
    }, 600_000);
  }

  it('leaves the API alive, healthy, its admin routes locked and its RSS near where it started', async () => {
    const report = await run.finish();
    console.log([...formatSummary(report), ...formatFailures(report, replay, 0)].join('\n'));
    expect(report.crashes, 'the API process crashed').toEqual([]);
    expect(report.postChecks, 'state of the API after the run').toEqual([]);
    expect(report.rss.withinLimit, `RSS ${report.rss.endBytes} > limit ${report.rss.limitBytes}`).toBe(true);
  }, 120_000);
});
