#!/usr/bin/env node
/**
 * The overload benchmark's load generator, run as its own process so its work does not
 * share an event loop with the API it measures. Clients arrive as a Poisson process at
 * `offeredPerS` for `durationS`; each wants one job done. A refused client sleeps for the
 * refusal's Retry-After (whole seconds, as an HTTP client reads it) and tries again, up to
 * `maxAttempts`. An accepted client follows its job's SSE stream to the end. Everything is
 * bounded: no new client after `durationS`, and everything stops at `hardStopS`.
 *
 * Input: one JSON argument. Output: one JSON line (a LoadReport) on stdout.
 */
import { isTerminalEvent } from '@switchyard/protocol';
import { consumeSse } from '../common/sse.js';
import { mulberry32 as prng } from '../common/stats.js';
import type { AcceptedJob, Attempt, LoadReport } from './stats.js';

interface LoadOptions {
  apiUrl: string;
  model: string;
  numPredict: number;
  offeredPerS: number;
  durationS: number;
  maxAttempts: number;
  hardStopS: number;
  seed: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as LoadOptions;
const t0 = Date.now();
const now = () => Date.now() - t0;
const hardStop = new AbortController();
const hardTimer = setTimeout(() => hardStop.abort(new Error('hard stop')), options.hardStopS * 1000);
const sleep = (ms: number) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    hardStop.signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });

const attempts: Attempt[] = [];
const jobs: AcceptedJob[] = [];
let gaveUp = 0;

/** Reads the job's SSE stream until its terminal event: when it started and how it ended. */
async function follow(job: AcceptedJob): Promise<void> {
  try {
    const response = await fetch(`${options.apiUrl}/v1/jobs/${job.id}/events`, { signal: hardStop.signal });
    if (!response.body) return;
    await consumeSse(response.body, (event) => {
      if (event.type === 'started' && job.startedAt === undefined) job.startedAt = now();
      if (!isTerminalEvent(event)) return false;
      job.endedAt = now();
      job.outcome = event.type === 'done' ? 'completed' : 'error';
      if (event.type === 'error') job.errorCode = event.code;
      return true;
    });
  } catch {
    // hard stop or a dropped connection: the job stays `lost`
  }
}

async function client(id: number): Promise<void> {
  const body = JSON.stringify({ model: options.model, prompt: `client ${id}`, options: { num_predict: options.numPredict } });
  for (let attempt = 0; attempt < options.maxAttempts && !hardStop.signal.aborted; attempt++) {
    const at = now();
    let response: Response;
    try {
      response = await fetch(`${options.apiUrl}/v1/jobs`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body,
        signal: hardStop.signal,
      });
    } catch {
      return;
    }
    const latencyMs = now() - at;
    const json = (await response.json().catch(() => ({}))) as any;
    const record: Attempt = { client: id, at, latencyMs, status: response.status, retry: attempt > 0 };
    attempts.push(record);
    if (response.status === 202) {
      const job: AcceptedJob = {
        client: id,
        id: json.id,
        acceptedAt: now(),
        position: json.queue?.position ?? 0,
        ...(typeof json.queue?.eta_s === 'number' && { etaS: json.queue.eta_s }),
        outcome: 'lost',
      };
      jobs.push(job);
      await follow(job);
      return;
    }
    record.code = json?.error?.code;
    const retryAfterS = Number(response.headers.get('retry-after'));
    const retryAfterMs = Number(response.headers.get('retry-after-ms'));
    if (Number.isFinite(retryAfterS) && retryAfterS > 0) record.retryAfterS = retryAfterS;
    if (Number.isFinite(retryAfterMs) && retryAfterMs > 0) record.retryAfterMs = retryAfterMs;
    if (response.status !== 429 && response.status !== 503) return;
    await sleep((record.retryAfterS ?? 1) * 1000);
  }
  gaveUp++;
}

async function main(): Promise<void> {
  const random = prng(options.seed);
  const running: Array<Promise<void>> = [];
  let next = 0;
  let clients = 0;
  while (!hardStop.signal.aborted) {
    next += (-Math.log(1 - random()) / options.offeredPerS) * 1000;
    if (next > options.durationS * 1000) break;
    const wait = next - now();
    if (wait > 0) await sleep(wait);
    running.push(client(clients++));
  }
  await Promise.all(running);
  clearTimeout(hardTimer);
  const report: LoadReport = {
    startedAt: new Date(t0).toISOString(),
    offeredPerS: options.offeredPerS,
    durationS: options.durationS,
    clients,
    attempts,
    jobs,
    gaveUp,
    hardStopped: hardStop.signal.aborted,
    wallS: now() / 1000,
  };
  process.stdout.write(`${JSON.stringify(report)}\n`);
}

await main();
