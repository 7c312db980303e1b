/**
 * Runs fuzz cases against a `FuzzTarget`, one at a time (so every job key created can be
 * pinned on the case that created it, and nothing depends on timing), checks each answer
 * (`checks.ts`), and keeps the tallies the test asserts on and the bench prints.
 */
import { ADMIN_CONTROLS, CATEGORIES, FUZZ_KEYS, MODEL, buildExchange, describeCase, targetOf, type Category, type FuzzCase } from './cases.js';
import { checkCase, type Violation } from './checks.js';
import { exchange } from './http.js';
import type { FuzzTarget, LoggedError } from './stack.js';

/** The seed of a run: `FUZZ_SEED` if set, else the fixed default (every run the same cases). */
export const DEFAULT_SEED = 20_261_201;
export function seedFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.FUZZ_SEED;
  if (raw === undefined || raw === '') return DEFAULT_SEED;
  const seed = Number(raw);
  if (!Number.isSafeInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, got ${JSON.stringify(raw)}`);
  return seed | 0;
}

/** `FUZZ_ONLY=bodies#12,raw` keeps the cases with those ids or in those categories (replaying one failure). */
export function onlyFromEnv(cases: FuzzCase[], env: NodeJS.ProcessEnv = process.env): FuzzCase[] {
  const only = env.FUZZ_ONLY?.split(',')
    .map((item) => item.trim())
    .filter(Boolean);
  if (!only || only.length === 0) return cases;
  return cases.filter((fuzzCase) => only.includes(fuzzCase.id) || only.includes(fuzzCase.category));
}

export interface CaseOutcome {
  id: string;
  category: Category;
  label: string;
  request: string;
  statuses: string[];
  violations: Violation[];
  ms: number;
}

export interface DistinctFailure {
  /** check · category · label · first status: one line of the findings list. */
  signature: string;
  check: string;
  category: Category;
  count: number;
  example: CaseOutcome;
}

export interface RunReport {
  seed: number;
  cases: number;
  durationMs: number;
  perCategory: Record<string, { cases: number; failed: number; ms: number; labels: Record<string, number> }>;
  statuses: Record<string, number>;
  failed: number;
  failures: CaseOutcome[];
  distinct: DistinctFailure[];
  byCheck: Record<string, number>;
  crashes: Array<{ caseId: string; info: string; stderr: string[] }>;
  rss: { baselineBytes: number; endBytes: number; limitBytes: number; withinLimit: boolean };
  aliveAtEnd: boolean;
  healthyAtEnd: boolean;
  postChecks: Violation[];
  jobs: { created: number; accepted: number };
  errorLogs: LoggedError[];
  /** The slowest cases (where the time goes). */
  slowest: Array<{ id: string; ms: number; request: string; statuses: string[] }>;
}

/**
 * How far the API's RSS (after a full GC) may be above its baseline (after the route walk,
 * also after a GC) at the end of the run: 64 MiB plus half the baseline. V8 keeps some of the
 * heap it grew to for 4 MB bodies and keeps code it compiled, so "back where it started"
 * cannot mean equal; a leak of what the cases sent (hundreds of MB over a bench run) is far
 * past this.
 */
export function rssLimit(baselineBytes: number): number {
  return baselineBytes + 64 * 2 ** 20 + baselineBytes / 2;
}

export interface FuzzRunOptions {
  seed: number;
  /**
   * Per exchange (default 10 s; uploads three times as long). A correct server answers every
   * case in milliseconds; the margin is for a loaded machine (the whole `pnpm test` in parallel).
   */
  timeoutMs?: number;
  progress?: (done: number, outcome: CaseOutcome) => void;
}

export class FuzzRun {
  private readonly outcomes: CaseOutcome[] = [];
  private readonly crashes: RunReport['crashes'] = [];
  private readonly started = performance.now();
  private baseline: number | undefined;
  private lastJobCount: number | undefined;
  private jobsCreated = 0;
  private jobsAccepted = 0;

  constructor(
    private readonly target: FuzzTarget,
    private readonly options: FuzzRunOptions,
  ) {}

  /** Takes the RSS baseline now (after a GC); the end of the run is compared with it. */
  async measureBaseline(): Promise<number> {
    this.baseline = await this.target.rssAfterGc();
    return this.baseline;
  }

  /** Runs cases in order; returns their outcomes (also kept for the report). */
  async run(cases: readonly FuzzCase[]): Promise<CaseOutcome[]> {
    const outcomes: CaseOutcome[] = [];
    this.lastJobCount ??= await this.target.jobKeyCount();
    for (const fuzzCase of cases) {
      const outcome = await this.runOne(fuzzCase);
      outcomes.push(outcome);
      this.outcomes.push(outcome);
      this.options.progress?.(this.outcomes.length, outcome);
    }
    return outcomes;
  }

  private async runOne(fuzzCase: FuzzCase): Promise<CaseOutcome> {
    const values = this.target.values;
    const timeoutMs = (this.options.timeoutMs ?? 10_000) * (fuzzCase.request.kind === 'http' && fuzzCase.request.trickle ? 3 : 1);
    const started = performance.now();
    const result = await exchange(this.target.port, buildExchange(fuzzCase, values, timeoutMs));
    const count = await this.target.jobKeyCount();
    const jobsCreated = count - this.lastJobCount!;
    this.lastJobCount = count;
    this.jobsCreated += Math.max(0, jobsCreated);
    const accepted = result.responses.filter((response) => response.status >= 200 && response.status < 300).length;
    this.jobsAccepted += accepted;
    const violations = checkCase({ fuzzCase, values, target: targetOf(fuzzCase, values), result, jobsCreated });
    if (!this.target.alive()) {
      const info = this.target.exitInfo() ?? 'exited';
      violations.push({ check: 'process.crash', detail: `the API process died (${info}); last stderr: ${this.target.stderrTail().slice(-5).join(' | ')}` });
      this.crashes.push({ caseId: fuzzCase.id, info, stderr: this.target.stderrTail() });
      await this.target.restart();
      this.lastJobCount = await this.target.jobKeyCount();
    }
    return {
      id: fuzzCase.id,
      category: fuzzCase.category,
      label: fuzzCase.label,
      request: describeCase(fuzzCase, values),
      statuses: result.ok ? result.responses.map((response) => String(response.status)) : [...result.responses.map((response) => String(response.status)), result.failure],
      violations,
      ms: performance.now() - started,
    };
  }

  /** After the cases: the process alive and healthy, admin routes still locked, a job still runs, RSS back near the baseline. */
  async finish(): Promise<RunReport> {
    const postChecks: Violation[] = [];
    const aliveAtEnd = this.target.alive();
    if (!aliveAtEnd) postChecks.push({ check: 'process.dead', detail: `the API is not running at the end (${this.target.exitInfo()})` });
    const healthyAtEnd = aliveAtEnd && (await this.target.healthy());
    if (aliveAtEnd && !healthyAtEnd) postChecks.push({ check: 'process.unhealthy', detail: '/healthz or /readyz does not answer 200 at the end' });

    if (healthyAtEnd) {
      // Nothing the cases sent (prototype keys included) changed who may do what.
      const controls = ADMIN_CONTROLS.map((draft, index): FuzzCase => ({ ...draft, id: `post#${index}`, category: 'admin' }));
      for (const outcome of await this.run(controls))
        postChecks.push(...outcome.violations.map((violation) => ({ check: `post.${violation.check}`, detail: `${outcome.request}: ${violation.detail}` })));
      const problem = await this.roundTrip().catch((error: Error) => error.message);
      if (problem) postChecks.push({ check: 'process.degraded', detail: `a valid job does not complete at the end: ${problem}` });
    }

    let endBytes = Number.NaN;
    if (aliveAtEnd) endBytes = await this.target.rssAfterGc();
    const baselineBytes = this.baseline ?? endBytes;
    const limitBytes = rssLimit(baselineBytes);
    const withinLimit = endBytes <= limitBytes;
    if (aliveAtEnd && !withinLimit)
      postChecks.push({ check: 'process.rss', detail: `RSS after GC ${mib(endBytes)} at the end, baseline ${mib(baselineBytes)}, limit ${mib(limitBytes)}` });
    return this.report({ aliveAtEnd, healthyAtEnd, postChecks, rss: { baselineBytes, endBytes, limitBytes, withinLimit } });
  }

  /** A valid job submitted and streamed to its end. Undefined when it works, else what went wrong. */
  private async roundTrip(): Promise<string | undefined> {
    const base = `http://127.0.0.1:${this.target.port}`;
    const headers = { Authorization: `Bearer ${FUZZ_KEYS.tenantA.key}`, 'Content-Type': 'application/json' };
    const submitted = await fetch(`${base}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify({ model: MODEL, prompt: 'still alive?', options: { num_predict: 2 } }) });
    if (submitted.status !== 202) return `submit answered ${submitted.status}: ${await submitted.text()}`;
    const { id } = (await submitted.json()) as { id: string };
    const events = await fetch(`${base}/v1/jobs/${id}/events`, { headers, signal: AbortSignal.timeout(15_000) });
    const text = await events.text();
    if (!/event: done/.test(text)) return `the event stream ended without a done event: ${text.slice(-200)}`;
    return undefined;
  }

  private report(end: Pick<RunReport, 'aliveAtEnd' | 'healthyAtEnd' | 'postChecks' | 'rss'>): RunReport {
    const perCategory: RunReport['perCategory'] = {};
    const statuses: Record<string, number> = {};
    const byCheck: Record<string, number> = {};
    for (const outcome of this.outcomes) {
      const entry = (perCategory[outcome.category] ??= { cases: 0, failed: 0, ms: 0, labels: {} });
      entry.cases++;
      entry.ms += outcome.ms;
      const family = labelFamily(outcome.label);
      entry.labels[family] = (entry.labels[family] ?? 0) + 1;
      for (const status of outcome.statuses) statuses[status] = (statuses[status] ?? 0) + 1;
      if (outcome.violations.length > 0) entry.failed++;
      for (const violation of outcome.violations) byCheck[violation.check] = (byCheck[violation.check] ?? 0) + 1;
    }
    const failures = this.outcomes.filter((outcome) => outcome.violations.length > 0);
    return {
      seed: this.options.seed,
      cases: this.outcomes.length,
      durationMs: performance.now() - this.started,
      perCategory: Object.fromEntries(
        [...CATEGORIES, ...Object.keys(perCategory)]
          .filter((category, i, all) => perCategory[category] && all.indexOf(category) === i)
          .map((category) => [category, perCategory[category]!]),
      ),
      statuses,
      failed: failures.length,
      failures,
      distinct: groupFailures(failures),
      byCheck,
      crashes: this.crashes,
      jobs: { created: this.jobsCreated, accepted: this.jobsAccepted },
      errorLogs: this.target.errorLogs(),
      slowest: [...this.outcomes]
        .sort((a, b) => b.ms - a.ms)
        .slice(0, 10)
        .map((outcome) => ({ id: outcome.id, ms: Math.round(outcome.ms), request: outcome.request.slice(0, 160), statuses: outcome.statuses })),
      ...end,
    };
  }
}

/** Failures grouped by rule, category, kind of case and first status: the distinct findings, each with an example. */
export function groupFailures(outcomes: readonly CaseOutcome[]): DistinctFailure[] {
  const distinct = new Map<string, DistinctFailure>();
  for (const outcome of outcomes) {
    for (const violation of outcome.violations) {
      const signature = `${violation.check} · ${outcome.category} · ${violation.group ?? labelFamily(outcome.label)} · ${outcome.statuses[0] ?? '-'}`;
      const known = distinct.get(signature);
      if (known) known.count++;
      else distinct.set(signature, { signature, check: violation.check, category: outcome.category, count: 1, example: outcome });
    }
  }
  return [...distinct.values()].sort((a, b) => a.check.localeCompare(b.check) || a.category.localeCompare(b.category) || b.count - a.count);
}

/** One line per distinct failure (for an assertion message or a log). */
export function failureLines(distinct: readonly DistinctFailure[], replay: (id: string) => string): string[] {
  return distinct.map((failure) => {
    const detail = failure.example.violations.find((violation) => violation.check === failure.check)?.detail ?? '';
    return `${failure.signature} ×${failure.count} — e.g. ${failure.example.id}: ${failure.example.request.slice(0, 300)} → ${detail.slice(0, 300)} (replay: ${replay(failure.example.id)})`;
  });
}

/** A label without its variable parts (route walk: the method; spellings: kept whole). */
export function labelFamily(label: string): string {
  const route = /^([A-Za-z-]+) (\/.*)$/.exec(label);
  if (route) return `method ${route[1]}`;
  return label;
}

export const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** The findings list: one line per distinct failure, with an example request and what came back. */
export function formatFailures(report: RunReport, replay: (id: string) => string, limit = 400): string[] {
  const lines: string[] = [];
  for (const failure of report.distinct.slice(0, limit)) {
    const violation = failure.example.violations.find((entry) => entry.check === failure.check)!;
    lines.push(`✗ ${failure.signature} ×${failure.count}`);
    lines.push(`    e.g. ${failure.example.id}: ${failure.example.request}`);
    lines.push(`    → ${violation.detail}`);
    lines.push(`    replay: ${replay(failure.example.id)}`);
  }
  if (report.distinct.length > limit) lines.push(`… and ${report.distinct.length - limit} more distinct failures`);
  for (const check of report.postChecks) lines.push(`✗ ${check.check}: ${check.detail}`);
  return lines;
}

/** The summary: cases per category, statuses seen, failures, RSS, duration. */
export function formatSummary(report: RunReport): string[] {
  const lines = [
    `fuzz seed ${report.seed}: ${report.cases} cases in ${(report.durationMs / 1000).toFixed(1)} s, ${report.failed} failing (${report.distinct.length} distinct failures)`,
  ];
  lines.push('cases per category:');
  for (const [category, entry] of Object.entries(report.perCategory)) {
    const labels = Object.entries(entry.labels)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([label, count]) => `${label} ${count}`)
      .join(', ');
    lines.push(`  ${category.padEnd(8)} ${String(entry.cases).padStart(6)} cases, ${String(entry.failed).padStart(5)} failing, ${(entry.ms / 1000).toFixed(1)} s — ${labels}`);
  }
  lines.push(
    `statuses seen: ${Object.entries(report.statuses)
      .sort((a, b) => a[0].localeCompare(b[0]))
      .map(([status, count]) => `${status}×${count}`)
      .join(' ')}`,
  );
  lines.push(
    `failures by rule: ${
      Object.entries(report.byCheck)
        .sort((a, b) => b[1] - a[1])
        .map(([check, count]) => `${check} ${count}`)
        .join(', ') || 'none'
    }`,
  );
  lines.push(`jobs: ${report.jobs.created} created, ${report.jobs.accepted} 2xx answers`);
  lines.push(
    `API process: ${report.aliveAtEnd ? 'alive' : 'DEAD'}, ${report.healthyAtEnd ? 'healthy' : 'NOT healthy'} at the end; crashes: ${report.crashes.length}${report.crashes.map((crash) => ` [${crash.caseId}: ${crash.info}]`).join('')}`,
  );
  lines.push(
    `API RSS after GC: ${mib(report.rss.baselineBytes)} after the route walk, ${mib(report.rss.endBytes)} at the end (limit ${mib(report.rss.limitBytes)}: ${report.rss.withinLimit ? 'ok' : 'EXCEEDED'})`,
  );
  lines.push(`slowest cases: ${report.slowest.map((entry) => `${entry.id} ${entry.ms} ms (${entry.statuses.join(',')})`).join(', ')}`);
  if (report.errorLogs.length > 0) {
    lines.push('error-level lines the API logged:');
    for (const entry of report.errorLogs.slice(0, 30)) lines.push(`  ×${entry.count} ${entry.message}`);
  }
  return lines;
}
