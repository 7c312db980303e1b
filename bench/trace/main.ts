/**
 * `pnpm bench:trace`: real arrivals (the first minutes of Microsoft's Azure LLM inference
 * trace, data/README.md) through Switchyard and through a plain round-robin, on the same
 * three simulated GPU nodes, one run each; plentiful VRAM (both models fit on every node),
 * so what is measured is how well each spreads the load, not what it keeps warm.
 *
 * - Round-robin: request i goes to node i mod 3 on the Ollama wire (`/api/generate`,
 *   streaming), with Ollama's default keep_alive (5 min, scaled).
 * - Switchyard: the real stack (Redis, the API process, one agent per node; bench/fleet's
 *   switchyard-stack), each request through the OpenAI wire with the official `openai`
 *   client, the conversation and code services as two tenants with their own keys.
 *
 * Time: arrivals are compressed `BENCH_TRACE_COMPRESS` (4) times and gpu-sim runs at
 * time_scale 1/4, so the simulated GPUs see the trace's load at its real intensity; the agents'
 * policy durations are scaled the same way as bench:fleet scales them (fleet/agent-scaling.ts).
 * TTFT is reported in wall milliseconds (trace milliseconds are 4× that).
 *
 * Knobs (environment): BENCH_TRACE_WINDOW_S (600: the trace seconds replayed, from the start),
 * BENCH_TRACE_COMPRESS (4), BENCH_TRACE_POLICIES (`round_robin,switchyard`),
 * BENCH_TRACE_OUT (bench/results/trace.json), BENCH_TRACE_RECORDS (a file for every request's
 * record, by policy: for comparing two policies request by request), BENCH_AGENT_LOG_LEVEL
 * (agents' log on stderr).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { Agent, request as httpRequest } from 'undici';
import { percentile, round } from '../common/stats.js';
import { FLEET_CATALOG, type CatalogModel } from '../fleet/catalog.js';
import type { NodeSpec, SimSettings } from '../fleet/fleet-config.js';
import { generateStream } from '../fleet/ollama-client.js';
import { startSimFleet, type SimFleet } from '../fleet/sim-fleet.js';
import { startSwitchyard } from '../fleet/switchyard-stack.js';
import { capacityMath, loadTrace, type Service, type TraceRequest } from './azure-trace.js';
import { envNumber } from '../common/env.js';

const ROOT = resolve(fileURLToPath(import.meta.url), '../../../..');
const WINDOW_S = envNumber('BENCH_TRACE_WINDOW_S', 600);
const COMPRESS = envNumber('BENCH_TRACE_COMPRESS', 4);
const POLICIES = (process.env.BENCH_TRACE_POLICIES ?? 'round_robin,switchyard').split(',').map((name) => name.trim());
const OUT = process.env.BENCH_TRACE_OUT ?? join(ROOT, 'bench', 'results', 'trace.json');
const REQUEST_TIMEOUT_MS = 120_000;
const DRAIN_TIMEOUT_MS = 60_000;
/** Target of issue 17: Switchyard's TTFT p99 at most this many times round-robin's. */
const TARGET_P99_RATIO = 1.1;

function fleetModel(name: string): CatalogModel {
  const model = FLEET_CATALOG.find((candidate) => candidate.name === name);
  if (!model) throw new Error(`${name} is not in bench/fleet/catalog.ts`);
  return model;
}

/** Three 24 GB nodes: both models (about 7 GB and 6 GB) fit on every one, with room to spare. */
const NODES: readonly NodeSpec[] = ['a', 'b', 'c'].map((name) => ({ name: `node-${name}-24gb`, gpu_name: 'Simulated RTX 4090 24 GB', vram_bytes: 24e9 }));

/**
 * The two services as two models. Speeds are chosen so that the conversation model's busiest
 * minute needs about 1.4 nodes' worth of its slots (as the issue's replay had it) and the
 * code service's long prompts and short answers hold a slot about half a second.
 */
const MODELS: Readonly<Record<Service, CatalogModel>> = {
  // bench:fleet's llama3.1:8b (its architecture, for the VRAM estimate), at this trace's speeds.
  conversation: { ...fleetModel('llama3.1:8b'), tokens_per_s: 300, prompt_tokens_per_s: 10_000 },
  code: {
    name: 'qwen2.5-coder:7b',
    size_bytes: 4_683_087_519,
    family: 'qwen2',
    parameter_count: 7_615_616_512,
    context_length: 32_768,
    block_count: 28,
    head_count: 28,
    head_count_kv: 4,
    embedding_length: 3_584,
    tokens_per_s: 150,
    prompt_tokens_per_s: 8_000,
  },
};
const TENANT_KEYS: Readonly<Record<Service, string>> = { conversation: 'sk-bench-trace-conversation', code: 'sk-bench-trace-code' };
const ADMIN_KEY = 'sk-bench-trace-admin';

interface RequestRecord {
  id: number;
  service: Service;
  /** Wall ms after the replay's start. */
  sent_ms: number;
  outcome: 'completed' | 'refused' | 'failed';
  failure?: string;
  ttft_ms?: number;
  tokens: number;
  /** Epoch ms the request was sent and its first token read (Switchyard's, for `parts`). */
  sent_at?: number;
  first_token_at?: number;
  /** Switchyard's job id (its `x-switchyard-job-id` header), to read the job's own timings after the run. */
  job_id?: string;
  /** The agent that ran it (Switchyard's). */
  agent?: string;
  /** Where a Switchyard request's time to first token went (wall ms), from its job's timings. */
  parts?: TtftParts;
}

/**
 * A Switchyard request's TTFT in four consecutive parts: into the API (sent → the job's
 * submission), in the queue (→ an agent started it), the agent and backend (→ the first
 * token reached the agent), and back out (→ the client read it: Redis, the API's relay, SSE).
 */
interface TtftParts {
  api_in_ms: number;
  queued_ms: number;
  agent_backend_ms: number;
  relay_out_ms: number;
}

interface PolicyRun {
  policy: string;
  records: RequestRecord[];
  startedAt: number;
  /** Per node: requests the simulator served. */
  perNode: Record<string, number>;
  /** Per model: wall seconds after the start at which its 1st, 2nd, 3rd … copy finished loading. */
  copiesAt: Record<string, number[]>;
  loads: number;
  describe?: Record<string, unknown>;
}

function simSettings(requests: readonly TraceRequest[]): SimSettings {
  return {
    time_scale: 1 / COMPRESS,
    num_parallel: 4,
    max_loaded_models: 0,
    load_bytes_per_s: 2e9,
    load_overhead_ms: 300,
    vram_overhead_bytes: 512 * 2 ** 20,
    num_ctx: 8_192,
    // Every answer runs to its num_predict (the trace's GeneratedTokens): the natural length is longer.
    response_tokens_min: Math.max(1, ...requests.map((request) => request.generated_tokens)),
    response_tokens_max: Math.max(1, ...requests.map((request) => request.generated_tokens)),
  };
}

/** A prompt of `tokens` tokens as gpu-sim counts them (4 characters each). */
function promptOf(request: TraceRequest): string {
  const word = request.service === 'code' ? 'def f(x): ' : 'tell me more ';
  const chars = Math.max(4, request.context_tokens * 4 - 16);
  return `#${request.id} ${word.repeat(Math.ceil(chars / word.length)).slice(0, chars)}`;
}

/** Open loop: request i is sent at its compressed trace time, whatever happened to earlier ones. */
async function replay(
  requests: readonly TraceRequest[],
  name: string,
  send: (request: TraceRequest, signal: AbortSignal) => Promise<Omit<RequestRecord, 'id' | 'service' | 'sent_ms'>>,
) {
  const startedAt = Date.now() + 200;
  const pending = new Set<Promise<void>>();
  const controllers = new Set<AbortController>();
  const records: RequestRecord[] = [];
  let nextProgress = startedAt + 15_000;
  for (const request of requests) {
    const due = startedAt + (request.at_s * 1_000) / COMPRESS;
    const wait = due - Date.now();
    if (wait > 1) await sleep(wait);
    const controller = new AbortController();
    controllers.add(controller);
    const timer = setTimeout(() => controller.abort(new Error('request timed out')), REQUEST_TIMEOUT_MS);
    const sentMs = Date.now() - startedAt;
    const run = send(request, controller.signal)
      .catch((error: unknown) => ({ outcome: 'failed' as const, failure: `bench error: ${(error as Error).message}`, tokens: 0 }))
      .then((result) => {
        clearTimeout(timer);
        controllers.delete(controller);
        records.push({ id: request.id, service: request.service, sent_ms: sentMs, ...result });
        pending.delete(run);
      });
    pending.add(run);
    if (Date.now() >= nextProgress) {
      nextProgress += 15_000;
      console.error(`  ${name}: trace ${Math.round(request.at_s)}/${WINDOW_S} s, ${records.length} done, ${pending.size} in flight`);
    }
  }
  const drained = Promise.all([...pending]);
  if ((await Promise.race([drained, sleep(DRAIN_TIMEOUT_MS, 'deadline' as const, { ref: false })])) === 'deadline') {
    console.error(`  ${name}: ${pending.size} requests still running ${DRAIN_TIMEOUT_MS / 1000} s after the last submission; aborting them`);
    for (const controller of controllers) controller.abort(new Error('drain deadline'));
    await Promise.race([Promise.all([...pending]), sleep(10_000, undefined, { ref: false })]);
  }
  return { records: records.sort((a, b) => a.id - b.id), startedAt };
}

/** When each model's copies finished loading, from the simulators' load timeline. */
function copyTimeline(fleet: SimFleet, startedAt: number): { copiesAt: Record<string, number[]>; loads: number } {
  const firstLoadEnd = new Map<string, number>();
  let loads = 0;
  for (const event of fleet.events) {
    if (event.kind !== 'load_end') continue;
    loads++;
    const key = `${event.model}\u0000${event.node}`;
    if (!firstLoadEnd.has(key)) firstLoadEnd.set(key, event.t);
  }
  const copiesAt: Record<string, number[]> = {};
  for (const [key, t] of firstLoadEnd) {
    const model = key.split('\u0000')[0]!;
    (copiesAt[model] ??= []).push(round((t - startedAt) / 1_000, 2));
  }
  for (const times of Object.values(copiesAt)) times.sort((a, b) => a - b);
  return { copiesAt, loads };
}

async function perNode(fleet: SimFleet): Promise<Record<string, number>> {
  return Object.fromEntries((await fleet.stats()).map(({ node, stats }) => [node, stats.requests_total]));
}

async function runRoundRobin(requests: readonly TraceRequest[], settings: SimSettings): Promise<PolicyRun> {
  const fleet = await startSimFleet(NODES, settings, Object.values(MODELS));
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, connections: 512 });
  // Ollama's default keep_alive of 5 minutes, in the simulators' time.
  const keepAlive = `${Math.round(300_000 / COMPRESS)}ms`;
  let next = 0;
  try {
    const { records, startedAt } = await replay(requests, 'round_robin', async (request, signal) => {
      const node = fleet.nodes[next++ % fleet.nodes.length]!;
      const sent = Date.now();
      const outcome = await generateStream(
        dispatcher,
        node.url,
        { model: MODELS[request.service].name, prompt: promptOf(request), keep_alive: keepAlive, options: { seed: request.id, num_predict: request.generated_tokens } },
        signal,
      );
      if (outcome.status === 429 || outcome.status === 503) return { outcome: 'refused', failure: `http_${outcome.status}`, tokens: outcome.tokens };
      if (outcome.error !== undefined || outcome.firstTokenAt === undefined) return { outcome: 'failed', failure: outcome.error ?? 'no token', tokens: outcome.tokens };
      return { outcome: 'completed', ttft_ms: outcome.firstTokenAt - sent, tokens: outcome.tokens };
    });
    return { policy: 'round_robin', records, startedAt, perNode: await perNode(fleet), ...copyTimeline(fleet, startedAt) };
  } finally {
    await dispatcher.close();
    await fleet.stop();
  }
}

async function runSwitchyard(requests: readonly TraceRequest[], settings: SimSettings): Promise<PolicyRun> {
  const fleet = await startSimFleet(NODES, settings, Object.values(MODELS));
  const stack = await startSwitchyard({
    nodes: fleet.nodes,
    settings,
    // Two models of 4 backend slots each on every node.
    agentSlots: 8,
    agentOverrides: {},
    apiEnv: { API_KEYS: (Object.keys(TENANT_KEYS) as Service[]).map((tenant) => `${tenant}:${TENANT_KEYS[tenant]}`).join(',') },
    adminKey: ADMIN_KEY,
    prefixName: 'bench-trace',
  }).catch(async (error: unknown) => {
    await fleet.stop();
    throw error;
  });
  const clients = Object.fromEntries(
    (Object.keys(TENANT_KEYS) as Service[]).map((tenant) => [
      tenant,
      new OpenAI({ baseURL: `${stack.apiUrl}/v1`, apiKey: TENANT_KEYS[tenant], maxRetries: 0, timeout: REQUEST_TIMEOUT_MS }),
    ]),
  ) as Record<Service, OpenAI>;
  try {
    const { records, startedAt } = await replay(requests, 'switchyard', async (request, signal) => {
      const sent = Date.now();
      let firstTokenAt: number | undefined;
      let tokens = 0;
      let jobId: string | undefined;
      try {
        const { data: stream, response } = await clients[request.service].chat.completions
          .create(
            {
              model: MODELS[request.service].name,
              messages: [{ role: 'user', content: promptOf(request) }],
              max_tokens: request.generated_tokens,
              seed: request.id,
              stream: true,
            },
            { signal },
          )
          .withResponse();
        jobId = response.headers.get('x-switchyard-job-id') ?? undefined;
        for await (const chunk of stream) {
          if (chunk.choices[0]?.delta?.content) {
            firstTokenAt ??= Date.now();
            tokens++;
          }
        }
      } catch (error) {
        if (error instanceof OpenAI.APIError && (error.status === 429 || error.status === 503)) return { outcome: 'refused', failure: `http_${error.status}`, tokens };
        return { outcome: 'failed', failure: (error as Error).message, tokens };
      }
      if (firstTokenAt === undefined) return { outcome: 'failed', failure: 'no token', tokens };
      return { outcome: 'completed', ttft_ms: firstTokenAt - sent, tokens, sent_at: sent, first_token_at: firstTokenAt, ...(jobId !== undefined && { job_id: jobId }) };
    });
    await attachParts(stack.apiUrl, records);
    return { policy: 'switchyard', records, startedAt, perNode: await perNode(fleet), ...copyTimeline(fleet, startedAt), describe: stack.describe() };
  } finally {
    await stack.stop();
    await fleet.stop();
  }
}

/** Reads each completed Switchyard job's timings back (its tenant's GET /v1/jobs/:id) and splits its TTFT into `parts`. */
async function attachParts(apiUrl: string, records: RequestRecord[]): Promise<void> {
  const dispatcher = new Agent({ connections: 16 });
  const pending = records.filter((record) => record.job_id !== undefined && record.sent_at !== undefined && record.first_token_at !== undefined);
  try {
    for (let i = 0; i < pending.length; i += 16) {
      await Promise.all(
        pending.slice(i, i + 16).map(async (record) => {
          const response = await httpRequest(`${apiUrl}/v1/jobs/${record.job_id}`, {
            headers: { authorization: `Bearer ${TENANT_KEYS[record.service]}` },
            dispatcher,
          });
          if (response.statusCode !== 200) {
            await response.body.dump();
            return;
          }
          const job = (await response.body.json()) as { agent?: string; created_at?: string; timings?: { queued_ms: number; ttft_ms: number } };
          if (job.created_at === undefined || job.timings === undefined) return;
          const submittedAt = Date.parse(job.created_at);
          const agentFirstTokenAt = submittedAt + job.timings.ttft_ms;
          if (job.agent !== undefined) record.agent = job.agent;
          record.parts = {
            api_in_ms: submittedAt - record.sent_at!,
            queued_ms: job.timings.queued_ms,
            agent_backend_ms: job.timings.ttft_ms - job.timings.queued_ms,
            relay_out_ms: record.first_token_at! - agentFirstTokenAt,
          };
        }),
      );
    }
  } finally {
    await dispatcher.close();
  }
}

/** Percentiles of each TTFT part over all requests, and the parts' means over the slowest 1 % (what makes the p99). */
function partsSummary(records: readonly RequestRecord[]) {
  const withParts = records.filter((record) => record.parts !== undefined);
  if (withParts.length === 0) return undefined;
  const names = Object.keys(withParts[0]!.parts!) as Array<keyof TtftParts>;
  const slowest = [...withParts].sort((a, b) => b.ttft_ms! - a.ttft_ms!).slice(0, Math.max(1, Math.ceil(withParts.length / 100)));
  const mean = (values: number[]) => round(values.reduce((sum, value) => sum + value, 0) / values.length, 1);
  return {
    requests: withParts.length,
    p50_ms: Object.fromEntries(
      names.map((name) => [
        name,
        round(
          percentile(
            withParts.map((record) => record.parts![name]),
            50,
          ),
          1,
        ),
      ]),
    ),
    p99_ms: Object.fromEntries(
      names.map((name) => [
        name,
        round(
          percentile(
            withParts.map((record) => record.parts![name]),
            99,
          ),
          1,
        ),
      ]),
    ),
    slowest_1pct_mean_ms: Object.fromEntries(names.map((name) => [name, mean(slowest.map((record) => record.parts![name]))])),
  };
}

function summarise(run: PolicyRun) {
  const completed = run.records.filter((record) => record.outcome === 'completed');
  const ttft = completed.map((record) => record.ttft_ms!);
  const byService = (service: Service) => completed.filter((record) => record.service === service).map((record) => record.ttft_ms!);
  const pcts = (values: number[]) => ({ p50: round(percentile(values, 50), 1), p90: round(percentile(values, 90), 1), p99: round(percentile(values, 99), 1) });
  const failures: Record<string, number> = {};
  for (const record of run.records) if (record.outcome !== 'completed') failures[record.failure ?? record.outcome] = (failures[record.failure ?? record.outcome] ?? 0) + 1;
  return {
    policy: run.policy,
    requests: run.records.length,
    completed: completed.length,
    refused: run.records.filter((record) => record.outcome === 'refused').length,
    failed: run.records.filter((record) => record.outcome === 'failed').length,
    ttft_ms: pcts(ttft),
    ttft_ms_by_service: { conversation: pcts(byService('conversation')), code: pcts(byService('code')) },
    requests_per_node: run.perNode,
    copies_loaded_at_s: run.copiesAt,
    loads: run.loads,
    failures,
    ttft_parts: partsSummary(run.records),
    // The requests behind the p99, each with its parts (when known): where a tail comes from.
    slowest: [...completed].sort((a, b) => b.ttft_ms! - a.ttft_ms!).slice(0, Math.ceil(completed.length / 100)),
  };
}

function gitCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

async function main(): Promise<void> {
  const requests = loadTrace(WINDOW_S);
  const settings = simSettings(requests);
  const speeds = { conversation: MODELS.conversation, code: MODELS.code };
  const capacity = capacityMath(requests, speeds, settings.num_parallel, WINDOW_S);
  const load = { at_start: loadavg().map((value) => round(value, 2)) };
  console.log(`bench:trace — Azure LLM trace, first ${WINDOW_S} s (${requests.length} requests), compressed ${COMPRESS}×, on ${NODES.length} × 24 GB gpu-sims`);
  for (const service of Object.keys(capacity) as Service[]) {
    const math = capacity[service];
    console.log(
      `  ${service} (${MODELS[service].name}): ${math.requests} requests, mean service ${round(math.mean_service_s, 3)} s (trace), ` +
        `mean ${round(math.mean_busy_slots, 2)} slots busy = ${round(math.mean_nodes, 2)} node; busiest minute (from ${math.busiest_minute.start_s} s) ` +
        `${math.busiest_minute.requests} requests, ${round(math.busiest_minute.busy_slots, 2)} slots = ${round(math.busiest_minute.nodes, 2)} × one node's ${settings.num_parallel}; ` +
        `busiest 2 s: ${math.busiest_2s.requests} requests from ${round(math.busiest_2s.start_s, 1)} s`,
    );
  }
  const runs: PolicyRun[] = [];
  for (const policy of POLICIES) {
    console.error(`running ${policy} …`);
    if (policy === 'round_robin') runs.push(await runRoundRobin(requests, settings));
    else if (policy === 'switchyard') runs.push(await runSwitchyard(requests, settings));
    else throw new Error(`unknown policy ${policy} (round_robin, switchyard)`);
  }
  const summaries = runs.map(summarise);
  const rr = summaries.find((summary) => summary.policy === 'round_robin');
  const sy = summaries.find((summary) => summary.policy === 'switchyard');
  const ratio = rr && sy ? round(sy.ttft_ms.p99 / rr.ttft_ms.p99, 3) : undefined;

  const rows: Array<[string, (summary: ReturnType<typeof summarise>) => string]> = [
    ['completed', (s) => `${s.completed} / ${s.requests}`],
    ['refused', (s) => String(s.refused)],
    ['failed', (s) => String(s.failed)],
    ['TTFT p50 (ms)', (s) => String(s.ttft_ms.p50)],
    ['TTFT p90 (ms)', (s) => String(s.ttft_ms.p90)],
    ['TTFT p99 (ms)', (s) => String(s.ttft_ms.p99)],
    ['TTFT p99 conv / code (ms)', (s) => `${s.ttft_ms_by_service.conversation.p99} / ${s.ttft_ms_by_service.code.p99}`],
    ['requests per node', (s) => Object.values(s.requests_per_node).join(' / ')],
    ['loads', (s) => String(s.loads)],
    ...(Object.values(MODELS).map((model) => [
      `${model.name} copies at (s)`,
      (s: ReturnType<typeof summarise>) => (s.copies_loaded_at_s[model.name] ?? []).join(', '),
    ]) as Array<[string, (summary: ReturnType<typeof summarise>) => string]>),
  ];
  console.log('');
  console.log(`| metric | ${summaries.map((summary) => summary.policy).join(' | ')} |`);
  console.log(`| --- | ${summaries.map(() => '---').join(' | ')} |`);
  for (const [label, cell] of rows) console.log(`| ${label} | ${summaries.map(cell).join(' | ')} |`);
  const parts = sy?.ttft_parts;
  if (parts) {
    const line = (label: string, values: Record<string, number>) =>
      `  ${label}: ${Object.entries(values)
        .map(([name, value]) => `${name.replace(/_ms$/, '')} ${value}`)
        .join(', ')} ms`;
    console.log('');
    console.log(`Switchyard's TTFT in parts (${parts.requests} requests):`);
    console.log(line('p50', parts.p50_ms));
    console.log(line('p99', parts.p99_ms));
    console.log(line('slowest 1 %, mean', parts.slowest_1pct_mean_ms));
  }
  if (ratio !== undefined) {
    console.log('');
    console.log(`TTFT p99 Switchyard ÷ round-robin: ${ratio} (target ≤ ${TARGET_P99_RATIO}): ${ratio <= TARGET_P99_RATIO ? 'PASS' : 'FAIL'}`);
  }
  const result = {
    benchmark: 'trace',
    date: new Date().toISOString(),
    commit: gitCommit(),
    load_average: { ...load, at_end: loadavg().map((value) => round(value, 2)) },
    trace: { source: 'Azure LLM inference trace 2023 (CC BY 4.0), bench/trace/data', window_s: WINDOW_S, compress: COMPRESS, requests: requests.length },
    nodes: NODES,
    sim_settings: settings,
    models: MODELS,
    capacity,
    results: summaries,
    ttft_p99_ratio: ratio,
    target: { ttft_p99_ratio_at_most: TARGET_P99_RATIO, pass: ratio !== undefined ? ratio <= TARGET_P99_RATIO : undefined },
    switchyard_stack: runs.find((run) => run.policy === 'switchyard')?.describe,
  };
  const recordsOut = process.env.BENCH_TRACE_RECORDS;
  if (recordsOut) writeFileSync(recordsOut, `${JSON.stringify(Object.fromEntries(runs.map((run) => [run.policy, run.records])))}\n`);
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
  console.log(`load average ${result.load_average.at_start.join(' ')} at start, ${result.load_average.at_end.join(' ')} at the end; written ${OUT}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
