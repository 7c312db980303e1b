/**
 * The Prometheus rules and the Grafana dashboard of infra/ cannot rot: their PromQL parses
 * and type-checks (Prometheus's own grammar and its UI's linter: promtool is not on these
 * machines), the files have the shape Prometheus and Grafana load, and every series they read
 * is served by the API's or an agent's /metrics on a running stack (with the labels they
 * match on, where the series has samples). One agent reads a fake nvidia-smi that prints
 * recorded outputs, so the GPU series have samples and their refresh is seen end to end.
 */
import { copyFileSync, chmodSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { AgentHeartbeat } from '@switchyard/protocol';
import { PromQLError, exposedSeries, parsePromQL, readExposition, type Exposition, type ParsedPromQL } from '../support/promql.js';
import { startStack, type Stack } from '../support/stack.js';

const repoFile = (path: string) => fileURLToPath(new URL(`../../${path}`, import.meta.url));
const RULES_PATH = repoFile('infra/prometheus/switchyard.rules.yml');
const SCRAPE_PATH = repoFile('infra/prometheus/prometheus.yml');
const DASHBOARD_PATH = repoFile('infra/grafana/switchyard-dashboard.json');
const FIXTURES = repoFile('apps/agent/src/fixtures');

/** Series Prometheus writes itself for every scrape, not any /metrics. */
const PROMETHEUS_SERIES = new Set(['up']);
/** Labels Prometheus attaches to every series of a target. */
const TARGET_LABELS = new Set(['instance', 'job']);
const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;

interface Query {
  /** Where it is: the rule's or the panel's name. */
  where: string;
  expr: string;
  parsed: ParsedPromQL;
}

/** Loads a rules file as Prometheus would, checking its shape; each rule's PromQL parsed, errors naming the rule. */
function loadRules(text: string): Query[] {
  const document = parseYaml(text, { uniqueKeys: true, strict: true }) as { groups?: unknown };
  if (!Array.isArray(document?.groups) || document.groups.length === 0) throw new Error('rules: no groups');
  const queries: Query[] = [];
  const groups = new Set<string>();
  const alerts = new Set<string>();
  for (const group of document.groups as Array<{ name?: unknown; rules?: unknown }>) {
    if (typeof group.name !== 'string' || groups.has(group.name)) throw new Error(`rules: a group without a unique name (${String(group.name)})`);
    groups.add(group.name);
    if (!Array.isArray(group.rules) || group.rules.length === 0) throw new Error(`rules: group ${group.name} has no rules`);
    for (const rule of group.rules as Array<Record<string, unknown>>) {
      const known = new Set(['alert', 'expr', 'for', 'keep_firing_for', 'labels', 'annotations']);
      const name = rule.alert;
      if (typeof name !== 'string' || !/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name)) throw new Error(`rules: ${group.name}: an alert without a valid name`);
      if (alerts.has(name)) throw new Error(`rules: ${name} twice`);
      alerts.add(name);
      for (const key of Object.keys(rule)) if (!known.has(key)) throw new Error(`rules: ${name}: unknown field ${key}`);
      if (typeof rule.expr !== 'string' || !rule.expr.trim()) throw new Error(`rules: ${name}: no expr`);
      if (rule.for !== undefined && (typeof rule.for !== 'string' || !DURATION.test(rule.for))) throw new Error(`rules: ${name}: bad for ${String(rule.for)}`);
      const labels = (rule.labels ?? {}) as Record<string, unknown>;
      if (!['info', 'warning', 'critical'].includes(labels.severity as string)) throw new Error(`rules: ${name}: severity must be info, warning or critical`);
      const annotations = (rule.annotations ?? {}) as Record<string, unknown>;
      for (const key of ['summary', 'description', 'runbook']) {
        if (typeof annotations[key] !== 'string' || !(annotations[key] as string).trim()) throw new Error(`rules: ${name}: no ${key} annotation`);
      }
      for (const [key, value] of Object.entries(annotations)) checkTemplate(`${name} ${key}`, String(value), rule.expr);
      let parsed: ParsedPromQL;
      try {
        parsed = parsePromQL(rule.expr);
      } catch (error) {
        throw new Error(`rules: ${name}: ${(error as Error).message}`, { cause: error });
      }
      queries.push({ where: `rule ${name}`, expr: rule.expr, parsed });
    }
  }
  return queries;
}

/**
 * An annotation's Go template: balanced `{{ }}`, only `$value` and `$labels.<name>` in them,
 * and a label the expression names (or a target label, which survives a selector unaggregated).
 */
function checkTemplate(where: string, text: string, expr: string): void {
  const opens = text.split('{{').length - 1;
  if (opens !== text.split('}}').length - 1) throw new Error(`rules: ${where}: unbalanced {{ }}`);
  for (const [, body] of text.matchAll(/\{\{(.*?)\}\}/g)) {
    const action = body!.trim();
    const labelRef = /^\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)$/.exec(action);
    if (labelRef) {
      if (!TARGET_LABELS.has(labelRef[1]!) && !new RegExp(`\\b${labelRef[1]}\\b`).test(expr))
        throw new Error(`rules: ${where}: $labels.${labelRef[1]} is no label of the expression`);
      continue;
    }
    if (!/^\$value( \| (humanize|humanizeDuration|humanizePercentage))?$/.test(action)) throw new Error(`rules: ${where}: unexpected template {{ ${action} }}`);
  }
}

/** Grafana's variables as a query sent to Prometheus has them: intervals as durations, a multi-value variable as a regex. */
function expandVariables(expr: string, defined: Set<string>): string {
  return expr.replace(/\$\{?(\w+)\}?/g, (whole, name: string) => {
    if (['__rate_interval', '__interval', '__range'].includes(name)) return '5m';
    if (!defined.has(name)) throw new Error(`dashboard: ${whole} is no variable of the dashboard`);
    return '.*';
  });
}

interface Panel {
  id?: unknown;
  type?: unknown;
  title?: unknown;
  gridPos?: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: Array<{ refId?: string; expr?: string; datasource?: { uid?: string } }>;
  panels?: Panel[];
}

const PANEL_TYPES = new Set(['row', 'timeseries', 'stat', 'gauge', 'bargauge', 'table', 'heatmap', 'text']);

/** Loads a dashboard as Grafana's import would need it (classic JSON model), checking its shape; returns every query. */
function loadDashboard(text: string): Query[] {
  const dashboard = JSON.parse(text) as Record<string, any>;
  for (const key of ['uid', 'title']) if (typeof dashboard[key] !== 'string' || !dashboard[key]) throw new Error(`dashboard: no ${key}`);
  if (!Number.isInteger(dashboard.schemaVersion)) throw new Error('dashboard: no schemaVersion');
  if (typeof dashboard.time?.from !== 'string') throw new Error('dashboard: no time range');
  const variables = (dashboard.templating?.list ?? []) as Array<Record<string, any>>;
  const datasource = variables.find((variable) => variable.type === 'datasource');
  if (datasource?.query !== 'prometheus') throw new Error('dashboard: no Prometheus datasource variable');
  const defined = new Set(variables.map((variable) => variable.name as string));
  const dsRef = `\${${datasource.name}}`;
  const queries: Query[] = [];
  for (const variable of variables) {
    if (variable.type !== 'query') continue;
    if (variable.datasource?.uid !== dsRef) throw new Error(`dashboard: variable ${variable.name} does not use ${dsRef}`);
    const query = typeof variable.query === 'string' ? variable.query : variable.query?.query;
    const labelValues = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(query ?? '');
    if (!labelValues) throw new Error(`dashboard: variable ${variable.name}: expected label_values(<selector>, <label>), got ${query}`);
    // The selector and the label it lists, as one expression of the same series.
    const expr = `count by (${labelValues[2]}) (${labelValues[1]})`;
    queries.push({ where: `variable ${variable.name}`, expr, parsed: parsePromQL(expr) });
  }

  const ids = new Set<unknown>();
  const boxes: Array<{ title: string; x: number; y: number; w: number; h: number }> = [];
  const panels = (dashboard.panels ?? []) as Panel[];
  if (panels.length === 0) throw new Error('dashboard: no panels');
  for (const panel of panels.flatMap((each) => [each, ...(each.panels ?? [])])) {
    const title = String(panel.title);
    if (!Number.isInteger(panel.id) || ids.has(panel.id)) throw new Error(`dashboard: panel ${title} has no unique id`);
    ids.add(panel.id);
    if (!PANEL_TYPES.has(panel.type as string)) throw new Error(`dashboard: panel ${title} has type ${String(panel.type)}`);
    const grid = panel.gridPos;
    if (!grid || ![grid.h, grid.w, grid.x, grid.y].every(Number.isInteger) || grid.w < 1 || grid.h < 1 || grid.x < 0 || grid.x + grid.w > 24) {
      throw new Error(`dashboard: panel ${title} has a bad gridPos`);
    }
    for (const box of boxes) {
      if (grid.x < box.x + box.w && box.x < grid.x + grid.w && grid.y < box.y + box.h && box.y < grid.y + grid.h)
        throw new Error(`dashboard: panels ${box.title} and ${title} overlap`);
    }
    boxes.push({ title, ...grid });
    if (panel.type === 'row' || panel.type === 'text') continue;
    if (panel.datasource?.uid !== dsRef) throw new Error(`dashboard: panel ${title} does not use ${dsRef}`);
    if (!panel.targets?.length) throw new Error(`dashboard: panel ${title} has no query`);
    const refIds = new Set<string>();
    for (const target of panel.targets) {
      if (!target.refId || refIds.has(target.refId)) throw new Error(`dashboard: panel ${title} has a query without a unique refId`);
      refIds.add(target.refId);
      if (target.datasource?.uid !== dsRef) throw new Error(`dashboard: panel ${title} query ${target.refId} does not use ${dsRef}`);
      if (typeof target.expr !== 'string' || !target.expr.trim()) throw new Error(`dashboard: panel ${title} query ${target.refId} has no expr`);
      const expr = expandVariables(target.expr, defined);
      try {
        queries.push({ where: `panel ${title} (${target.refId})`, expr, parsed: parsePromQL(expr) });
      } catch (error) {
        throw new Error(`dashboard: panel ${title} query ${target.refId}: ${(error as Error).message}`, { cause: error });
      }
    }
  }
  return queries;
}

/** What of `queries` the exposition does not have: unknown series, matchers on labels a series lacks, groupings on labels none has. */
function missing(queries: Query[], exposition: Exposition): string[] {
  const exposed = exposedSeries(exposition);
  const problems: string[] = [];
  for (const { where, parsed } of queries) {
    const seen = new Set<string>(TARGET_LABELS);
    let allSampled = true;
    for (const selector of parsed.selectors) {
      if (PROMETHEUS_SERIES.has(selector.metric)) continue;
      if (!exposed.has(selector.metric)) {
        problems.push(`${where}: ${selector.metric} is not exposed`);
        continue;
      }
      const labels = exposition.labels.get(selector.metric);
      if (!labels) {
        allSampled = false;
        continue;
      }
      for (const label of labels) seen.add(label);
      for (const matcher of selector.matchers) {
        if (!TARGET_LABELS.has(matcher.label) && !labels.has(matcher.label)) problems.push(`${where}: ${selector.metric} has no label ${matcher.label}`);
      }
    }
    if (allSampled) for (const label of parsed.grouping) if (!seen.has(label)) problems.push(`${where}: groups by ${label}, which none of its series has`);
  }
  return problems;
}

describe('the Prometheus and Grafana files (no stack)', () => {
  it('load: the rules and the dashboard parse, have their shape, and every rule says what to do', () => {
    const rules = loadRules(readFileSync(RULES_PATH, 'utf8'));
    const names = rules.map((rule) => rule.where.replace('rule ', ''));
    // The alerts the operations docs describe, each in the file.
    for (const alert of [
      'SwitchyardQueueWaitOverSLO',
      'SwitchyardAgentDown',
      'SwitchyardAgentMissingFromFleet',
      'SwitchyardAgentDegraded',
      'SwitchyardModelLoadOutOfMemory',
      'SwitchyardEvictionThrashing',
      'SwitchyardAdmissionRefusalsRising',
      'SwitchyardRedisUnreachable',
      'SwitchyardModelDrift',
    ]) {
      expect(names).toContain(alert);
    }
    const docs = readFileSync(repoFile('docs/operations.md'), 'utf8');
    for (const name of names) expect(docs, `docs/operations.md describes ${name}`).toContain(name);
    expect(loadDashboard(readFileSync(DASHBOARD_PATH, 'utf8')).length).toBeGreaterThan(20);
  });

  it('the scrape config names the rules file, scrapes the API with a bearer key from a file and the agents, under the job names the rules use', () => {
    const config = parseYaml(readFileSync(SCRAPE_PATH, 'utf8'), { uniqueKeys: true, strict: true }) as Record<string, any>;
    expect(config.rule_files).toEqual(['switchyard.rules.yml']);
    expect(DURATION.test(config.global.scrape_interval)).toBe(true);
    const jobs = new Map<string, any>((config.scrape_configs as any[]).map((job) => [job.job_name, job]));
    expect(jobs.get('switchyard-api')).toMatchObject({ metrics_path: '/metrics', authorization: { type: 'Bearer', credentials_file: expect.any(String) } });
    expect(jobs.get('switchyard-agent')).toMatchObject({ metrics_path: '/metrics' });
    for (const job of jobs.values()) expect(job.static_configs[0].targets.every((target: string) => /^[\w.-]+:\d+$/.test(target))).toBe(true);
    const rules = readFileSync(RULES_PATH, 'utf8');
    for (const [, job] of rules.matchAll(/job="([^"]+)"/g)) expect(jobs.has(job!)).toBe(true);
  });

  it('a broken expression fails the parser, by syntax or by type', () => {
    for (const broken of [
      'rate(switchyard_jobs_refused_total[5m]',
      'sum by model (switchyard_queue_depth)',
      'switchyard_queue_depth{state="waiting"',
      'max by (model) (switchyard_queue_depth) >',
      'switchyard_queue_depth{state=waiting}',
      'rate(switchyard_jobs_refused_total[5 minutes])',
      // Parses, but Prometheus refuses it: rate() of an instant vector; abs() of two arguments.
      'rate(switchyard_jobs_refused_total)',
      'abs(switchyard_queue_depth, switchyard_queue_depth)',
      'histogram_quantile(sum by (le) (rate(switchyard_time_to_first_token_seconds_bucket[5m])))',
    ]) {
      expect(() => parsePromQL(broken), broken).toThrow(PromQLError);
    }
    // Longer than an editor parses at once (about 3000 characters): linted whole, to its last term.
    const long = Array.from({ length: 200 }, (_, i) => `(rate(m${i}_total[5m]))`).join(' + ');
    expect(parsePromQL(long).selectors).toHaveLength(200);
    expect(() => parsePromQL(`${long} + rate(m_total)`)).toThrow(/expected type matrix in call to function "rate"/);
    expect(parsePromQL('sum by (model, reason) (rate(switchyard_jobs_refused_total{reason=~"a|b"}[5m])) / on (model) group_left sum by (model) (x)')).toEqual({
      selectors: [
        { metric: 'switchyard_jobs_refused_total', matchers: [{ label: 'reason', op: '=~', value: 'a|b' }] },
        { metric: 'x', matchers: [] },
      ],
      grouping: ['model', 'reason'],
    });
  });

  it('a rules file or a dashboard with one broken query is refused, naming it', () => {
    const rules = readFileSync(RULES_PATH, 'utf8');
    const brokenRule = rules.replace('max by (model) (switchyard_queue_oldest_wait_seconds) > 120', 'max by (model) (switchyard_queue_oldest_wait_seconds > 120');
    expect(brokenRule).not.toBe(rules);
    expect(() => loadRules(brokenRule)).toThrow(/SwitchyardQueueWaitOverSLO: syntax error/);
    expect(() => loadRules(rules.replace('runbook: >-', 'runbok: >-'))).toThrow(/unknown field|no runbook/);
    expect(() => loadRules(rules.replace('{{ $labels.model }} has waited', '{{ $labels.modle }} has waited'))).toThrow(/\$labels.modle is no label/);
    expect(() => loadRules(rules.replace('for: 2m', 'for: 2 minutes'))).toThrow(/bad for/);

    const dashboard = JSON.parse(readFileSync(DASHBOARD_PATH, 'utf8'));
    const panel = dashboard.panels.find((each: Panel) => each.type === 'timeseries');
    panel.targets[0].expr = panel.targets[0].expr.replace(/\)$/, '');
    expect(() => loadDashboard(JSON.stringify(dashboard))).toThrow(`panel ${panel.title} query A: syntax error`);
    panel.targets[0].expr = 'sum(switchyard_queue_depth{model=~"$modle"})';
    expect(() => loadDashboard(JSON.stringify(dashboard))).toThrow(/\$modle is no variable/);
  });

  it('the exposure check finds an unknown series, a label a series lacks and a grouping on no label', () => {
    const exposition = readExposition(['# HELP a_total x\n# TYPE a_total counter\na_total{model="m"} 1\n# HELP h x\n# TYPE h histogram\n# HELP g x\n# TYPE g gauge\n']);
    const query = (expr: string): Query => ({ where: expr, expr, parsed: parsePromQL(expr) });
    expect(
      missing([query('sum by (model) (rate(a_total[5m]))'), query('histogram_quantile(0.5, sum by (le) (rate(h_bucket[5m])))'), query('g'), query('up == 0')], exposition),
    ).toEqual([]);
    expect(missing([query('rate(b_total[5m])'), query('a_total{reason="x"}'), query('sum by (modle) (a_total)')], exposition)).toEqual([
      'rate(b_total[5m]): b_total is not exposed',
      'a_total{reason="x"}: a_total has no label reason',
      'sum by (modle) (a_total): groups by modle, which none of its series has',
    ]);
  });
});

describe('the Prometheus and Grafana files against a running stack', () => {
  const ADMIN = 'observability-admin-key';
  const TENANT = 'observability-tenant-key';
  const MODEL = 'qwen2.5:0.5b';
  let stack: Stack;
  let smiOutput: string;

  beforeAll(async () => {
    // An nvidia-smi that prints whatever recorded output the test puts in a file.
    const dir = mkdtempSync(join(tmpdir(), 'smi-'));
    smiOutput = join(dir, 'output.txt');
    copyFileSync(join(FIXTURES, 'nvidia-smi-stats-2xL40S.txt'), smiOutput);
    const script = join(dir, 'nvidia-smi');
    writeFileSync(script, `#!/bin/sh\ncat '${smiOutput}'\n`);
    chmodSync(script, 0o755);
    stack = await startStack({
      api: { apiKeys: `t:${TENANT}`, adminApiKeys: ADMIN },
      nodes: [{ agent: { nvidiaSmiPath: script, gpuStatsIntervalMs: 100 } }, {}],
    });
  });
  afterAll(() => stack?.close());

  const admin = { Authorization: `Bearer ${ADMIN}` };
  const agentsById = async () => {
    const response = await fetch(`${stack.apiUrl}/v1/agents`, { headers: admin });
    const body = (await response.json()) as { data: unknown[] };
    return new Map(body.data.map((raw) => AgentHeartbeat.parse(raw)).map((agent) => [agent.id, agent]));
  };
  const scrape = async (url: string, headers: Record<string, string> = {}) => {
    const response = await fetch(`${url}/metrics`, { headers });
    expect(response.status).toBe(200);
    return response.text();
  };

  it('every series the rules and the dashboard read is served by the API or an agent', async () => {
    // A little traffic, so counters and histograms have samples with their labels.
    const submit = (body: unknown) =>
      fetch(`${stack.apiUrl}/v1/jobs`, { method: 'POST', headers: { Authorization: `Bearer ${TENANT}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const accepted = (await (await submit({ model: MODEL, prompt: 'hello', options: { num_predict: 3 } })).json()) as { id: string };
    expect((await submit({ model: 'no-such-model:1b', prompt: 'x' })).status).toBe(404);
    // Streamed to its end through the API: time to first token is observed where the stream is relayed.
    const stream = await fetch(`${stack.apiUrl}/v1/jobs/${accepted.id}/events`, {
      headers: { Authorization: `Bearer ${TENANT}`, Accept: 'text/event-stream' },
      signal: AbortSignal.timeout(15_000),
    });
    expect(await stream.text()).toContain('"type":"done"');

    // The scrape config's credential: the API's /metrics wants an admin key; a tenant's is refused.
    expect((await fetch(`${stack.apiUrl}/metrics`, { headers: { Authorization: `Bearer ${TENANT}` } })).status).toBe(403);
    expect((await fetch(`${stack.apiUrl}/metrics`)).status).toBe(401);
    const pages = [await scrape(stack.apiUrl, admin), ...(await Promise.all(stack.agents.map((agent) => scrape(agent.httpUrl))))];
    const exposition = readExposition(pages);
    // The traffic's samples are there (the check below then also compares labels).
    for (const name of [
      'switchyard_time_to_first_token_seconds_bucket',
      'switchyard_agent_model_loads_total',
      'switchyard_jobs_refused_total',
      'switchyard_agent_gpu_utilization_ratio',
    ]) {
      expect(exposition.labels.has(name), name).toBe(true);
    }

    const queries = [...loadRules(readFileSync(RULES_PATH, 'utf8')), ...loadDashboard(readFileSync(DASHBOARD_PATH, 'utf8'))];
    expect(missing(queries, exposition)).toEqual([]);
    expect(exposition.types.get('switchyard_fleet_agents')).toBe('gauge');
  });

  it('GPU utilisation, temperature and power reach the heartbeat and /metrics, follow nvidia-smi, and [N/A] reads as absent', async () => {
    const [measured, configured] = stack.agents;
    const fleet = await agentsById();
    expect(fleet.get(measured!.id)!.gpus).toEqual([
      expect.objectContaining({ index: 0, name: 'NVIDIA L40S', utilization_percent: 97, temperature_c: 71, power_w: 318.44, power_limit_w: 350 }),
      expect.objectContaining({ index: 1, utilization_percent: 0, temperature_c: 38, power_w: 35.1 }),
    ]);
    expect(fleet.get(configured!.id)!.gpus[0]).not.toHaveProperty('utilization_percent');
    let text = await scrape(measured!.httpUrl);
    expect(text).toContain('switchyard_agent_gpu_utilization_ratio{gpu="0",name="NVIDIA L40S"} 0.97');
    expect(text).toContain('switchyard_agent_gpu_power_limit_watts{gpu="1",name="NVIDIA L40S"} 350');
    // A configured GPU has no live figures: the family is described, with no sample.
    const configuredText = await scrape(configured!.httpUrl);
    expect(configuredText).toContain('# TYPE switchyard_agent_gpu_temperature_celsius gauge');
    expect(configuredText).not.toMatch(/^switchyard_agent_gpu_temperature_celsius\{/m);

    // The next reads print [N/A] for some figures: gone from the heartbeat and /metrics, nothing NaN.
    // Swapped in whole (a rename): the agent reads every 100 ms and must never see half a file.
    copyFileSync(join(FIXTURES, 'nvidia-smi-stats-na.txt'), `${smiOutput}.next`);
    renameSync(`${smiOutput}.next`, smiOutput);
    await expect.poll(async () => (await agentsById()).get(measured!.id)!.gpus[0]!.temperature_c, { timeout: 10_000 }).toBe(45);
    const gpus = (await agentsById()).get(measured!.id)!.gpus;
    expect(gpus[0]).not.toHaveProperty('utilization_percent');
    expect(gpus[1]).toEqual({ index: 1, name: 'NVIDIA L40S', vram_total_bytes: 46068 * 2 ** 20, vram_used_bytes: 0, utilization_percent: 0 });
    text = await scrape(measured!.httpUrl);
    expect(text).not.toMatch(/^switchyard_agent_gpu_utilization_ratio\{gpu="0"/m);
    expect(text).toContain('switchyard_agent_gpu_utilization_ratio{gpu="1",name="NVIDIA L40S"} 0');
    expect(text).not.toMatch(/NaN/);
  });
});
