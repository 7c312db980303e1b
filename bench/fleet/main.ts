#!/usr/bin/env node
/**
 * `pnpm bench:fleet`: replays one fleet trace against three placement policies, each on a
 * fresh simulated fleet, prints a table and writes bench/results/fleet.json. See
 * bench/README.md for what is measured and how.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem, platform, release } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { FLEET_CATALOG, loadSeconds, loadSecondsByName, medianLoadSeconds, vramNeedBytes } from './catalog.js';
import { DEFAULT_SIM_SETTINGS, FLEETS, type NodeSpec, type SimSettings } from './fleet-config.js';
import { capacityReference } from './capacity.js';
import { computeMetrics, slotOnlyQueueWaits, type PolicyMetrics, type SlotReference } from './metrics.js';
import { roundRobin } from './policies/round-robin.js';
import { seedGateway } from './policies/seed-gateway.js';
import { switchyard } from './policies/switchyard.js';
import { POLICY_NAMES, type Policy, type PolicyName } from './policy.js';
import { replay } from './replay.js';
import type { RequestRecord } from './records.js';
import { judgeTargets, metricsTable, QUEUE_WAIT_TARGET_LOADS, targetsTable } from './report.js';
import { startSimFleet, type SimFleet } from './sim-fleet.js';
import { startSwitchyard, type SwitchyardStack } from './switchyard-stack.js';
import { DEFAULT_TRACE_PARAMS, generateTrace, modelCounts, type TraceParams } from './trace.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
/** What the benchmark runs: uncommitted changes here are recorded with the results. */
const CODE_UNDER_TEST = ['apps/agent', 'apps/api', 'apps/gpu-sim', 'packages/backends', 'packages/protocol', 'packages/redis'];

const USAGE = `Usage: pnpm bench:fleet [-- options]

Replays a synthetic fleet trace (20 models, Zipf popularity, bursts, a diurnal shift of
the hot set) against round_robin, seed_gateway and switchyard on fresh simulated GPU
nodes and writes bench/results/fleet.json.

Options (trace seconds are simulated "real" seconds; wall time = trace time × time-scale):
  --policies <list>       comma list of ${POLICY_NAMES.join(', ')} (default: all)
  --fleet <name>          ${Object.entries(FLEETS)
    .map(([name, nodes]) => `${name} (${nodes.map((node) => node.vram_bytes / 1e9).join('+')} GB)`)
    .join(' or ')};
                          default: default; results go to fleet-<name>.json unless it is default
  --seed <n>              trace seed (default ${DEFAULT_TRACE_PARAMS.seed})
  --time-scale <x>        gpu-sim time_scale (default ${DEFAULT_SIM_SETTINGS.time_scale})
  --duration-s <s>        measured trace length, one compressed day (default ${DEFAULT_TRACE_PARAMS.duration_s})
  --warmup-s <s>          unmeasured traffic before it (default ${DEFAULT_TRACE_PARAMS.warmup_s})
  --rate <r>              mean steady requests per trace second (default ${DEFAULT_TRACE_PARAMS.rate_per_s})
  --zipf <s>              Zipf exponent (default ${DEFAULT_TRACE_PARAMS.zipf_s})
  --burst-every-s <s>     mean trace seconds between bursts, 0 = none (default ${DEFAULT_TRACE_PARAMS.burst_every_s})
  --seed-window-s <s>     seed gateway's idle-unload window (default 600)
  --agent-slots <n>       Switchyard agent slots per node (default 16)
  --agent-set k=v         override one agent config field after scaling (repeatable), e.g. idleUnloadMs=30000
  --out <file>            results file (default bench/results/fleet.json)
  --dump-records <dir>    also write every request's record per policy (JSON lines), for digging
  --quick                 a short smoke run (240 s day, 30 s warm-up)
  -h, --help
`;

interface Options {
  policies: PolicyName[];
  fleetName: string;
  nodes: readonly NodeSpec[];
  trace: TraceParams;
  settings: SimSettings;
  seedWindowS: number;
  agentSlots: number;
  agentOverrides: Record<string, unknown>;
  out: string;
  dumpRecords: string | undefined;
}

function parseOptions(argv: string[]): Options | undefined {
  const { values } = parseArgs({
    args: argv.filter((arg) => arg !== '--'),
    options: {
      policies: { type: 'string' },
      fleet: { type: 'string' },
      seed: { type: 'string' },
      'time-scale': { type: 'string' },
      'duration-s': { type: 'string' },
      'warmup-s': { type: 'string' },
      rate: { type: 'string' },
      zipf: { type: 'string' },
      'burst-every-s': { type: 'string' },
      'seed-window-s': { type: 'string' },
      'agent-slots': { type: 'string' },
      'agent-set': { type: 'string', multiple: true },
      out: { type: 'string' },
      'dump-records': { type: 'string' },
      quick: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return undefined;
  }
  const num = (name: string, value: string | undefined, fallback: number) => {
    if (value === undefined) return fallback;
    const parsed = Number(value);
    if (!Number.isFinite(parsed)) throw new Error(`--${name}: not a number: ${value}`);
    return parsed;
  };
  const policies = (values.policies?.split(',').map((name) => name.trim()) ?? [...POLICY_NAMES]) as PolicyName[];
  for (const name of policies) if (!POLICY_NAMES.includes(name)) throw new Error(`--policies: unknown policy ${name} (know ${POLICY_NAMES.join(', ')})`);
  const fleetName = values.fleet ?? 'default';
  const nodes = FLEETS[fleetName];
  if (!nodes) throw new Error(`--fleet: unknown fleet ${fleetName} (know ${Object.keys(FLEETS).join(', ')})`);
  const quick = values.quick === true;
  const trace: TraceParams = {
    ...DEFAULT_TRACE_PARAMS,
    models: FLEET_CATALOG.map((model) => model.name),
    seed: num('seed', values.seed, DEFAULT_TRACE_PARAMS.seed),
    duration_s: num('duration-s', values['duration-s'], quick ? 240 : DEFAULT_TRACE_PARAMS.duration_s),
    warmup_s: num('warmup-s', values['warmup-s'], quick ? 30 : DEFAULT_TRACE_PARAMS.warmup_s),
    rate_per_s: num('rate', values.rate, DEFAULT_TRACE_PARAMS.rate_per_s),
    zipf_s: num('zipf', values.zipf, DEFAULT_TRACE_PARAMS.zipf_s),
    burst_every_s: num('burst-every-s', values['burst-every-s'], quick ? 40 : DEFAULT_TRACE_PARAMS.burst_every_s),
  };
  const timeScale = num('time-scale', values['time-scale'], DEFAULT_SIM_SETTINGS.time_scale);
  if (!(timeScale > 0)) throw new Error('--time-scale must be > 0');
  const agentOverrides: Record<string, unknown> = {};
  for (const pair of values['agent-set'] ?? []) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--agent-set: expected field=value, got ${pair}`);
    const raw = pair.slice(eq + 1);
    agentOverrides[pair.slice(0, eq)] = raw !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  }
  return {
    policies,
    fleetName,
    nodes,
    trace,
    settings: { ...DEFAULT_SIM_SETTINGS, time_scale: timeScale },
    seedWindowS: num('seed-window-s', values['seed-window-s'], 600),
    agentSlots: num('agent-slots', values['agent-slots'], 16),
    agentOverrides,
    out: resolve(values.out ?? join(ROOT, 'bench', 'results', fleetName === 'default' ? 'fleet.json' : `fleet-${fleetName}.json`)),
    dumpRecords: values['dump-records'] === undefined ? undefined : resolve(values['dump-records']),
  };
}

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function git(args: string[]): string | undefined {
  try {
    return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

function machine() {
  const cpu = cpus();
  return {
    nproc: availableParallelism(),
    cpu_model: cpu[0]?.model ?? 'unknown',
    memory_gb: Number((totalmem() / 1e9).toFixed(1)),
    node: process.version,
    os: `${platform()} ${release()}`,
    load_average_at_start: loadavg().map((value) => Number(value.toFixed(2))),
  };
}

async function runPolicy(
  name: PolicyName,
  options: Options,
  trace: ReturnType<typeof generateTrace>,
): Promise<{ metrics: PolicyMetrics; describe: Record<string, unknown>; records: RequestRecord[] }> {
  const { settings } = options;
  say(`\n▶ ${name}: starting a fresh fleet`);
  const fleet: SimFleet = await startSimFleet(options.nodes, settings, FLEET_CATALOG);
  let stack: SwitchyardStack | undefined;
  let policy: Policy | undefined;
  try {
    if (name === 'round_robin') policy = roundRobin(fleet.nodes, settings.time_scale);
    else if (name === 'seed_gateway') policy = seedGateway(fleet.nodes, settings.time_scale, options.seedWindowS);
    else {
      stack = await startSwitchyard({ nodes: fleet.nodes, settings, agentSlots: options.agentSlots, agentOverrides: options.agentOverrides });
      policy = switchyard(stack);
    }
    const wallS = (trace.end_s * settings.time_scale).toFixed(0);
    say(`  replaying ${trace.requests.length} requests over ${trace.end_s} trace seconds (≈ ${wallS} s wall)`);
    const result = await replay(trace, policy, {
      timeScale: settings.time_scale,
      // 15 trace-minutes per request (at least 30 s wall); stragglers get 30 s wall after the
      // last send, which keeps the three policies within the 10-minute budget however badly
      // one of them backs up. Dropped requests count as failed and enter the percentiles.
      requestTimeoutMs: Math.max(30_000, 900_000 * settings.time_scale),
      drainTimeoutMs: 30_000,
      log: say,
    });
    // Let last unloads and counters settle before reading them.
    await sleep(200);
    const stats = await fleet.stats();
    const metrics = computeMetrics({ replay: result, events: fleet.events, stats, catalog: FLEET_CATALOG, settings });
    if (options.dumpRecords) {
      mkdirSync(options.dumpRecords, { recursive: true });
      const lines = [
        JSON.stringify({ type: 'run', startedAt: result.startedAt, warmupEndAt: result.warmupEndAt, endedAt: result.endedAt, time_scale: settings.time_scale }),
        ...fleet.events.map((event) => JSON.stringify({ type: 'sim_event', ...event })),
        ...result.records.map((record) => JSON.stringify({ type: 'request', ...record })),
      ];
      writeFileSync(join(options.dumpRecords, `${name}.jsonl`), `${lines.join('\n')}\n`);
    }
    say(
      `  done in ${metrics.details.wall_seconds} s wall: ${metrics.completed} completed, ${metrics.failed} failed, warm ${metrics.warm_share === null ? 'n/a' : (metrics.warm_share * 100).toFixed(1) + ' %'}, ${metrics.loads} loads`,
    );
    if (metrics.details.timeline_check !== 'ok') say(`  WARNING: ${metrics.details.timeline_check}`);
    return { metrics, describe: policy.describe(), records: result.records };
  } finally {
    await policy?.close().catch(() => undefined);
    await stack?.stop().catch((error: unknown) => say(`  (stopping Switchyard: ${(error as Error).message})`));
    await fleet.stop();
  }
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (!options) return;
  const started = Date.now();
  // The code under test is what was built just before this run: read its version now, not
  // after minutes in which someone may commit.
  const commit = git(['rev-parse', '--short', 'HEAD']);
  const dirty =
    git(['status', '--porcelain', '--', ...CODE_UNDER_TEST])
      ?.split('\n')
      .filter(Boolean)
      .map((line) => line.trim()) ?? [];
  const trace = generateTrace(options.trace);
  const { settings } = options;
  const oneLoadS = medianLoadSeconds(FLEET_CATALOG, settings.load_bytes_per_s, settings.load_overhead_ms);
  const measured = trace.requests.filter((request) => !request.warmup).length;
  say(
    `Switchyard fleet benchmark — seed ${trace.params.seed}, ${trace.requests.length} requests (${measured} measured, ${trace.bursts.length} bursts), ${options.nodes.length} nodes (${options.fleetName} fleet), time_scale ${settings.time_scale}`,
  );
  const needBytes = new Map(FLEET_CATALOG.map((model) => [model.name, vramNeedBytes(model, settings.num_ctx, settings.num_parallel, settings.vram_overhead_bytes)]));
  const capacity = capacityReference(trace, options.nodes, needBytes, loadSecondsByName(FLEET_CATALOG, settings.load_bytes_per_s, settings.load_overhead_ms));
  say(
    `  capacity: ${capacity.fleet_vram_gb} GB of VRAM for ${capacity.catalog_vram_gb} GB of models; a greedy static placement per phase would serve ${(capacity.static_warm_share * 100).toFixed(1)} % of requests warm, no static placement more than ${(capacity.static_warm_share_bound * 100).toFixed(1)} % of requests warm; on the pooled VRAM, a cache that knows the future ${(capacity.clairvoyant.warm_share * 100).toFixed(1)} % (${capacity.clairvoyant.loads} loads), an LRU cache ${(capacity.pooled_lru.warm_share * 100).toFixed(1)} % (${capacity.pooled_lru.loads} loads)`,
  );
  if (trace.dropped > 0) say(`  note: max_requests cut ${trace.dropped} requests from the end of the trace`);

  const policies: Partial<Record<PolicyName, PolicyMetrics>> = {};
  const described: Partial<Record<PolicyName, Record<string, unknown>>> = {};
  let slotReference: SlotReference | undefined;
  for (const name of options.policies) {
    const { metrics, describe, records } = await runPolicy(name, options, trace);
    policies[name] = metrics;
    described[name] = describe;
    // Switchyard completes every request, so its records carry every arrival with its
    // service time; a policy that drops requests would also drop the queueing they cause.
    if (name === 'switchyard') {
      const toTraceS = (ms: number) => ms / 1_000 / settings.time_scale;
      slotReference = slotOnlyQueueWaits(records, settings.num_parallel, toTraceS, QUEUE_WAIT_TARGET_LOADS * oneLoadS);
    }
  }

  const targets = judgeTargets(policies, oneLoadS, { slots: slotReference, clairvoyantWarmShare: capacity.clairvoyant.warm_share });
  const results = {
    trace: {
      seed: trace.params.seed,
      models: FLEET_CATALOG.map((model) => ({
        name: model.name,
        size_gb: Number((model.size_bytes / 1e9).toFixed(2)),
        vram_need_gb: Number(((needBytes.get(model.name) ?? 0) / 1e9).toFixed(2)),
        load_s: Number(loadSeconds(model, settings.load_bytes_per_s, settings.load_overhead_ms).toFixed(2)),
      })),
      requests: trace.requests.length,
      measured_requests: measured,
      duration_s: trace.params.duration_s,
      warmup_s: trace.params.warmup_s,
      time_scale: settings.time_scale,
      fleet: options.fleetName,
      nodes: options.nodes.map((node) => ({ name: node.name, gpu: node.gpu_name, vram_gb: node.vram_bytes / 1e9 })),
      params: { ...trace.params, models: undefined },
      phases: trace.phases.map((phase) => ({ name: phase.name, start_s: phase.start_s, end_s: phase.end_s, top5: phase.ranking.slice(0, 5) })),
      bursts: trace.bursts.map((burst) => ({ at_s: Number(burst.at_s.toFixed(1)), model: burst.model, size: burst.size, tail: burst.tail })),
      requests_per_model: modelCounts(trace.requests),
      sim: settings,
      one_model_load_s: Number(oneLoadS.toFixed(2)),
      capacity,
      ...(slotReference && { slot_reference: slotReference }),
    },
    policies,
    policy_config: described,
    targets: targets.map((target) => ({ ...target })),
    definitions: {
      warm_share: 'completed requests during whose wait (submission → holding a backend slot) no load of their model ran on the node that served them',
      loads: "model loads that started after the warm-up, from the sims' load timeline (cross-checked against /sim/stats loads_total)",
      load_gpu_seconds: 'sum over those loads of size / load throughput + runner start, in real (unscaled) GPU seconds',
      oom: 'refusals for lack of VRAM ("model requires more system memory") met by measured requests; details.oom_including_warmup counts the warm-up too',
      queue_wait: "submission → holding a backend slot, minus the time the request's own model was loading on its node; trace seconds",
      ttft: 'submission → first token at the client; trace seconds',
      percentiles: 'nearest rank over completed requests plus requests the bench gave up on (with the wait they had when dropped, a lower bound)',
      one_model_load_s: 'median nominal load time over the catalog (the bar for the p99 queue wait target)',
      queue_wait_over_own_load_p99: "p99 over requests of queue wait / nominal load time of the request's own model (the p99 target read per request)",
      slot_reference:
        "queue waits if every model were warm all the time on one copy with num_parallel slots and nothing ever loaded: the Switchyard run's arrivals and measured service times (first slot → finished) through those slots; what slots alone cost to any placement that holds one copy of a model when its burst starts",
      capacity_static_warm_share:
        'share of measured requests whose model fits in a greedy static placement of its phase (models by requests per GB, best-fit onto the nodes); not optimal',
      capacity_static_warm_share_bound:
        "share no static placement of a phase can exceed: the same order filling the fleet's total VRAM as one GPU, the overflowing model taken fractionally; a reference rather than a strict bound for a dynamic policy",
      capacity_clairvoyant:
        "the fleet's VRAM pooled as one GPU and run as a cache that knows every future request: load on a miss, evict the models asked for furthest in the future (Belady), loads take their time; what foresight buys, not a bound",
      capacity_pooled_lru: 'the same pooled cache evicting the model asked for least recently: the textbook online cache, with no fragmentation across nodes',
    },
    machine: machine(),
    code: { commit, uncommitted_changes: dirty },
    command: `pnpm bench:fleet${
      process.argv.length > 2
        ? ` -- ${process.argv
            .slice(2)
            .filter((arg) => arg !== '--')
            .join(' ')}`
        : ''
    }`,
    wall_seconds: Number(((Date.now() - started) / 1_000).toFixed(1)),
    date: new Date().toISOString(),
  };
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(results, null, 2)}\n`);

  say('\nFleet simulation — all durations in trace ("real GPU") seconds');
  say(metricsTable(policies));
  if (targets.length > 0) {
    say('');
    say(targetsTable(targets));
  }
  say(`\nwrote ${options.out} (${results.wall_seconds} s wall)`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench:fleet failed: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  },
);
