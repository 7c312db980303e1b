/**
 * The chaos run's clients, as a careful user of the native API writes them: every request
 * is recorded (when sent and answered, status, error code, replica), submissions carry an
 * `idempotency_key` and are resent on any failure (another replica on a refused connection,
 * after Retry-After, capped at 1 s, on a 429/503), streams are read with eventsource-parser
 * and reconnect with Last-Event-ID on any break (a reset, an end without `done`/`error`, a
 * 5xx, or 45 s without a byte: the SDK's stall timeout, three of the API's heartbeats), and
 * detached jobs are polled with GET until they end.
 */
import { setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { createParser } from 'eventsource-parser';
import { Agent, request, type Dispatcher } from 'undici';
import { mulberry32 } from '../common/stats.js';
import { Transcript } from './transcript.js';

export type RequestKind = 'submit' | 'get' | 'events' | 'probe_get' | 'probe_post' | 'final_get';

export interface HttpRecord {
  kind: RequestKind;
  replica: number;
  sent: number;
  answered: number;
  /** 0: no HTTP answer (refused, reset, timed out). */
  status: number;
  code?: string;
  error?: string;
}

export interface JobSpec {
  key: string;
  prompt: string;
  /** Sent as `messages` (one user message) rather than `prompt`: the chat and generate wires of the backend. */
  chat: boolean;
  seed: number;
  numPredict: number;
}

/** The request body of a job (without the submission's own fields). */
export function jobInput(spec: JobSpec): Record<string, unknown> {
  return {
    ...(spec.chat ? { messages: [{ role: 'user', content: spec.prompt }] } : { prompt: spec.prompt }),
    options: { seed: spec.seed, num_predict: spec.numPredict },
  };
}

export interface Job {
  spec: JobSpec;
  kind: 'streamed' | 'detached' | 'probe';
  id: string;
  acceptedAt: number;
  /** Streamed jobs: what the client read. */
  transcript?: Transcript;
  connects: number;
  /** When each stream connection was answered 200. */
  readonly connectTimes: number[];
  /** The replica the stream is connected to now (undefined between connections). */
  connectedTo?: number;
  /** Breaks of a stream (reconnects) with why and when. */
  breaks: Array<{ at: number; why: string; replica: number }>;
  /** A stream answered 204 (everything delivered) before the client read the end. */
  noContentBeforeEnd?: boolean;
  /** When the client learned the job ended (terminal event, or a GET with a terminal status). */
  endedAt?: number;
  /** GET /v1/jobs/:id's last answer. */
  record?: JobRecord;
  /** GET answered 404 job_not_found after the job was accepted. */
  notFound?: boolean;
}

export interface JobRecord {
  status: string;
  result?: { text?: string; finish_reason?: string };
  error?: { code?: string; message?: string };
  agent?: string;
}

/** One signal for every request of the run (hundreds at once: no listener limit). */
function abortController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(0, controller.signal);
  return controller;
}

export const TERMINAL = new Set(['completed', 'failed', 'cancelled', 'expired']);

/** Everything the clients share: replicas, the clock, the record of every request, the jobs. */
export class ClientContext {
  readonly records: HttpRecord[] = [];
  readonly jobs: Job[] = [];
  readonly dispatcher: Dispatcher = new Agent({ connections: 256, keepAliveTimeout: 4_000, connect: { timeout: 2_000 } });
  /** Submissions start while true. */
  submitting = true;
  /** Everything stops after this (ms since the start of the run). */
  stopAt = Number.POSITIVE_INFINITY;
  /** Aborted when the run ends: open streams and requests give up at once. */
  readonly abort = abortController();
  private readonly random = mulberry32(7);
  private readonly t0 = performance.now();

  constructor(
    readonly replicas: string[],
    readonly model: string,
  ) {}

  now(): number {
    return performance.now() - this.t0;
  }

  /**
   * A replica for the next request, at random (seeded), as a load balancer spreads them.
   * Not round-robin: each streamed job takes two picks (POST, stream), so a shared counter
   * sent every stream to the same replica.
   */
  pick(): number {
    return Math.floor(this.random() * this.replicas.length);
  }

  over(): boolean {
    return this.abort.signal.aborted || this.now() >= this.stopAt;
  }

  /** Ends the run for every client. */
  stop(): void {
    this.stopAt = Math.min(this.stopAt, this.now());
    this.abort.abort();
  }
}

interface Answer {
  status: number;
  json?: Record<string, unknown>;
  code?: string;
  retryAfterS?: number;
}

/** One request, recorded; never throws (status 0 on a transport error). */
export async function call(ctx: ClientContext, kind: RequestKind, replica: number, method: 'GET' | 'POST', path: string, body?: unknown): Promise<Answer> {
  const sent = ctx.now();
  try {
    const response = await request(`${ctx.replicas[replica]}${path}`, {
      method,
      dispatcher: ctx.dispatcher,
      signal: ctx.abort.signal,
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
      ...(body !== undefined && { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const text = await response.body.text();
    let json: Record<string, unknown> | undefined;
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : undefined;
    } catch {
      json = undefined;
    }
    const code = errorCode(json);
    const retryAfter = Number(response.headers['retry-after']);
    ctx.records.push({ kind, replica, sent, answered: ctx.now(), status: response.statusCode, ...(code !== undefined && { code }) });
    return {
      status: response.statusCode,
      ...(json !== undefined && { json }),
      ...(code !== undefined && { code }),
      ...(Number.isFinite(retryAfter) && { retryAfterS: retryAfter }),
    };
  } catch (error) {
    ctx.records.push({ kind, replica, sent, answered: ctx.now(), status: 0, error: transportError(error) });
    return { status: 0 };
  }
}

function errorCode(json: Record<string, unknown> | undefined): string | undefined {
  const error = json?.error;
  if (error && typeof error === 'object' && typeof (error as { code?: unknown }).code === 'string') return (error as { code: string }).code;
  return undefined;
}

function transportError(error: unknown): string {
  const e = error as { code?: string; cause?: { code?: string }; message?: string };
  return e?.code ?? e?.cause?.code ?? e?.message ?? String(error);
}

/** The wait a refusal asks for, capped at 1 s (the run is short; Retry-After comes in whole seconds). */
const backoff = (answer: Answer) => sleep(Math.min(1_000, Math.max(100, (answer.retryAfterS ?? 0.2) * 1000)));

/**
 * POST /v1/jobs until accepted (202, or 200: the key's job exists), or until 20 s after
 * submissions stop. Another replica after a refused connection.
 */
export async function submit(ctx: ClientContext, spec: JobSpec, kind: Job['kind'], detach: boolean): Promise<Job | undefined> {
  const body = {
    model: ctx.model,
    ...jobInput(spec),
    idempotency_key: spec.key,
    ...(detach && { detach: true }),
  };
  const giveUpAt = () => (ctx.submitting ? Number.POSITIVE_INFINITY : ctx.now() + 20_000);
  let limit = giveUpAt();
  for (let replica = ctx.pick(); !ctx.over();) {
    const answer = await call(ctx, kind === 'probe' ? 'probe_post' : 'submit', replica, 'POST', '/v1/jobs', body);
    const job = accepted(ctx, answer, spec, kind);
    if (job) return job;
    if (answer.status >= 400 && answer.status < 500 && answer.status !== 429 && answer.status !== 408) return undefined;
    limit = Math.min(limit, giveUpAt());
    if (ctx.now() > limit) return undefined;
    if (answer.status === 0) {
      replica = (replica + 1) % ctx.replicas.length;
      await sleep(100);
    } else await backoff(answer);
  }
  return undefined;
}

/** The job a 202/200 answer accepted (one per id), or undefined for any other answer. */
function accepted(ctx: ClientContext, answer: Answer, spec: JobSpec, kind: Job['kind']): Job | undefined {
  if ((answer.status !== 202 && answer.status !== 200) || typeof answer.json?.id !== 'string') return undefined;
  const id = answer.json.id;
  const existing = ctx.jobs.find((job) => job.id === id);
  if (existing) return existing;
  const job: Job = { spec, kind, id, acceptedAt: ctx.now(), connects: 0, connectTimes: [], breaks: [] };
  ctx.jobs.push(job);
  return job;
}

/** One detached submission, not resent (the probe of an outage: how fast and how the API answers). */
export async function probeSubmit(ctx: ClientContext, spec: JobSpec, replica: number): Promise<Job | undefined> {
  const body = { model: ctx.model, ...jobInput(spec), idempotency_key: spec.key, detach: true };
  return accepted(ctx, await call(ctx, 'probe_post', replica, 'POST', '/v1/jobs', body), spec, 'probe');
}

/** The client's stall timeout: no byte for this long (the API sends a comment every 15 s) and the stream is replaced. */
export const STALL_MS = 45_000;

/**
 * Reads the job's events until its `done`/`error` (or a 204), reconnecting with
 * Last-Event-ID on any break, until `ctx.stopAt`.
 */
export async function follow(ctx: ClientContext, job: Job): Promise<void> {
  const transcript = new Transcript(ctx.now());
  job.transcript = transcript;
  let notFound = 0;
  let replica = ctx.pick();
  while (!transcript.terminal && !ctx.over()) {
    const sent = ctx.now();
    const path = `/v1/jobs/${job.id}/events`;
    let response: Dispatcher.ResponseData;
    try {
      response = await request(`${ctx.replicas[replica]}${path}`, {
        method: 'GET',
        dispatcher: ctx.dispatcher,
        signal: ctx.abort.signal,
        headersTimeout: 10_000,
        bodyTimeout: STALL_MS,
        headers: transcript.lastSeq > 0 ? { 'last-event-id': String(transcript.lastSeq) } : {},
      });
    } catch (error) {
      const why = transportError(error);
      ctx.records.push({ kind: 'events', replica, sent, answered: ctx.now(), status: 0, error: why });
      job.breaks.push({ at: ctx.now(), why: `connect: ${why}`, replica });
      replica = (replica + 1) % ctx.replicas.length;
      await sleep(100);
      continue;
    }
    if (response.statusCode !== 200) {
      const text = await response.body.text().catch(() => '');
      let code: string | undefined;
      try {
        code = errorCode(JSON.parse(text) as Record<string, unknown>);
      } catch {
        code = undefined;
      }
      ctx.records.push({ kind: 'events', replica, sent, answered: ctx.now(), status: response.statusCode, ...(code !== undefined && { code }) });
      if (response.statusCode === 204) {
        // Everything was delivered, says the API: the end must have been read already.
        if (!transcript.terminal) job.noContentBeforeEnd = true;
        return;
      }
      if (response.statusCode === 404) {
        if (++notFound >= 5) {
          job.notFound = true;
          return;
        }
        await sleep(1_000);
        continue;
      }
      job.breaks.push({ at: ctx.now(), why: `HTTP ${response.statusCode}${code ? ` ${code}` : ''}`, replica });
      await sleep(Math.min(1_000, Math.max(100, Number(response.headers['retry-after'] ?? 0.2) * 1000)));
      replica = (replica + 1) % ctx.replicas.length;
      continue;
    }
    ctx.records.push({ kind: 'events', replica, sent, answered: ctx.now(), status: 200 });
    job.connects++;
    job.connectTimes.push(ctx.now());
    job.connectedTo = replica;
    notFound = 0;
    let why = 'ended without done/error';
    try {
      const parser = createParser({
        onEvent: (message) => {
          let data: Record<string, unknown> = {};
          try {
            data = JSON.parse(message.data) as Record<string, unknown>;
          } catch {
            data = {};
          }
          const seq = Number(message.id ?? data.seq);
          transcript.add(seq, message.event ?? String(data.type), data, ctx.now());
        },
      });
      const decoder = new TextDecoder();
      for await (const chunk of response.body) {
        parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
        if (transcript.terminal) break;
        if (ctx.over()) {
          why = 'run over';
          break;
        }
      }
    } catch (error) {
      why = transportError(error);
    } finally {
      response.body.destroy();
      job.connectedTo = undefined;
    }
    // (Read through a function: the parser's callback changed it, which narrowing cannot see.)
    const end = ended(transcript);
    if (end) {
      job.endedAt = end.at;
      return;
    }
    job.breaks.push({ at: ctx.now(), why, replica });
    await sleep(50);
  }
}

/** GET /v1/jobs/:id until the job ends (every 500 ms), until `ctx.stopAt`. */
export async function poll(ctx: ClientContext, job: Job, kind: RequestKind = 'get', intervalMs = 500): Promise<void> {
  let notFound = 0;
  while (!ctx.over()) {
    const answer = await call(ctx, kind, ctx.pick(), 'GET', `/v1/jobs/${job.id}`);
    if (answer.status === 200 && answer.json) {
      job.record = answer.json as unknown as JobRecord;
      notFound = 0;
      if (TERMINAL.has(job.record.status)) {
        job.endedAt ??= ctx.now();
        return;
      }
    } else if (answer.status === 404 && answer.code === 'job_not_found') {
      if (++notFound >= 5) {
        job.notFound = true;
        return;
      }
    }
    await sleep(intervalMs);
  }
}

const ended = (transcript: Transcript) => transcript.terminal;

/** Reads a job's record once, retrying (another replica) until an answer comes or `deadline`. */
export async function readRecord(ctx: ClientContext, job: Job, deadline: number): Promise<void> {
  while (ctx.now() < deadline) {
    const answer = await call(ctx, 'final_get', ctx.pick(), 'GET', `/v1/jobs/${job.id}`);
    if (answer.status === 200 && answer.json) {
      job.record = answer.json as unknown as JobRecord;
      job.notFound = false;
      return;
    }
    if (answer.status === 404) {
      job.notFound = true;
      return;
    }
    await sleep(200);
  }
}
