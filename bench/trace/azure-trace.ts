/**
 * The Azure LLM inference trace window in `data/` (see data/README.md): the conversation and
 * code services as two models of two tenants, one request list in arrival order, and the
 * capacity math that says how much of a node each model's arrivals keep busy.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export type Service = 'conversation' | 'code';

export interface TraceRequest {
  id: number;
  service: Service;
  /** Seconds after the window's start, in trace (real) time. */
  at_s: number;
  context_tokens: number;
  generated_tokens: number;
}

/** The CSVs, next to the sources (bench/trace/data), whether this runs from there or built in bench/dist/trace. */
const DATA_DIR = [new URL('./data/', import.meta.url), new URL('../../trace/data/', import.meta.url)].map((url) => fileURLToPath(url)).find((dir) => existsSync(dir)) ?? '';
export const TRACE_FILES: Readonly<Record<Service, string>> = {
  conversation: 'AzureLLMInferenceTrace_conv_first10min.csv',
  code: 'AzureLLMInferenceTrace_code_first10min.csv',
};

/** Reads one CSV: `TIMESTAMP,ContextTokens,GeneratedTokens`, timestamps in UTC with 7 fractional digits. */
export function parseTraceCsv(text: string): Array<{ at_ms: number; context_tokens: number; generated_tokens: number }> {
  const rows: Array<{ at_ms: number; context_tokens: number; generated_tokens: number }> = [];
  const lines = text.split(/\r?\n/);
  if (lines[0]?.trim() !== 'TIMESTAMP,ContextTokens,GeneratedTokens') throw new Error(`unexpected trace header: ${lines[0]}`);
  for (const [index, line] of lines.entries()) {
    if (index === 0 || line.trim() === '') continue;
    const [stamp, context, generated] = line.split(',');
    // "2023-11-16 18:15:46.6805900": whole milliseconds are enough for a replay.
    const match = /^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})(\.\d+)?$/.exec(stamp ?? '');
    const contextTokens = Number(context);
    const generatedTokens = Number(generated);
    if (!match || !Number.isInteger(contextTokens) || !Number.isInteger(generatedTokens)) throw new Error(`trace line ${index + 1} is malformed: ${line}`);
    const fraction = match[3] ? Number(match[3]) : 0;
    rows.push({ at_ms: Date.parse(`${match[1]}T${match[2]}Z`) + Math.round(fraction * 1_000), context_tokens: contextTokens, generated_tokens: generatedTokens });
  }
  return rows;
}

/** Both services' requests within the first `windowS` seconds (from the first request of either), merged in arrival order. */
export function loadTrace(windowS: number, read: (file: string) => string = (file) => readFileSync(DATA_DIR + file, 'utf8')): TraceRequest[] {
  const parsed = (Object.keys(TRACE_FILES) as Service[]).map((service) => ({ service, rows: parseTraceCsv(read(TRACE_FILES[service])) }));
  const start = Math.min(...parsed.flatMap(({ rows }) => (rows[0] ? [rows[0].at_ms] : [])));
  const merged = parsed
    .flatMap(({ service, rows }) =>
      rows.map((row) => ({ service, at_s: (row.at_ms - start) / 1_000, context_tokens: row.context_tokens, generated_tokens: row.generated_tokens })),
    )
    .filter((request) => request.at_s < windowS)
    .sort((a, b) => a.at_s - b.at_s || a.service.localeCompare(b.service));
  return merged.map((request, id) => ({ id, ...request }));
}

export interface ModelSpeed {
  /** Generation, tokens per trace second. */
  tokens_per_s: number;
  prompt_tokens_per_s: number;
}

/** Trace seconds a request holds a slot: its prompt, then its tokens (gpu-sim's model of a request). */
export function serviceSeconds(request: Pick<TraceRequest, 'context_tokens' | 'generated_tokens'>, speed: ModelSpeed): number {
  return request.context_tokens / speed.prompt_tokens_per_s + request.generated_tokens / speed.tokens_per_s;
}

export interface ServiceCapacity {
  requests: number;
  mean_service_s: number;
  /** Mean rate over the window, per trace second. */
  mean_rate_per_s: number;
  /** Slots kept busy on average over the window (rate × service time, Little's law). */
  mean_busy_slots: number;
  busiest_minute: { start_s: number; requests: number; busy_slots: number; nodes: number };
  /** The most requests that arrived within any 2 s, and the slots they would need at once. */
  busiest_2s: { start_s: number; requests: number };
  /** Busy slots over one node's slots for this model (`num_parallel`). */
  mean_nodes: number;
}

/** How much of a node each service needs: on average, in its busiest minute (aligned to whole minutes) and its busiest 2 s. */
export function capacityMath(
  requests: readonly TraceRequest[],
  speeds: Readonly<Record<Service, ModelSpeed>>,
  numParallel: number,
  windowS: number,
): Record<Service, ServiceCapacity> {
  const out = {} as Record<Service, ServiceCapacity>;
  for (const service of Object.keys(speeds) as Service[]) {
    const mine = requests.filter((request) => request.service === service);
    const work = mine.map((request) => serviceSeconds(request, speeds[service]));
    const totalWork = work.reduce((sum, seconds) => sum + seconds, 0);
    const minutes = new Map<number, { requests: number; work: number }>();
    mine.forEach((request, index) => {
      const minute = Math.floor(request.at_s / 60);
      const entry = minutes.get(minute) ?? { requests: 0, work: 0 };
      entry.requests++;
      entry.work += work[index]!;
      minutes.set(minute, entry);
    });
    const [busiestStart, busiest] = [...minutes.entries()].sort((a, b) => b[1].work - a[1].work)[0] ?? [0, { requests: 0, work: 0 }];
    let burst = { start_s: 0, requests: 0 };
    for (let i = 0, j = 0; i < mine.length; i++) {
      while (mine[i]!.at_s - mine[j]!.at_s > 2) j++;
      if (i - j + 1 > burst.requests) burst = { start_s: mine[j]!.at_s, requests: i - j + 1 };
    }
    const span = Math.max(1, Math.min(windowS, (mine.at(-1)?.at_s ?? 0) + 1));
    const busySlots = totalWork / span;
    const minuteSpan = Math.min(60, windowS - busiestStart * 60);
    const minuteSlots = busiest.work / Math.max(1, minuteSpan);
    out[service] = {
      requests: mine.length,
      mean_service_s: mine.length > 0 ? totalWork / mine.length : 0,
      mean_rate_per_s: mine.length / span,
      mean_busy_slots: busySlots,
      busiest_minute: { start_s: busiestStart * 60, requests: busiest.requests, busy_slots: minuteSlots, nodes: minuteSlots / numParallel },
      busiest_2s: burst,
      mean_nodes: busySlots / numParallel,
    };
  }
  return out;
}
