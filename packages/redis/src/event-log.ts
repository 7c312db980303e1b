import type { Redis } from 'ioredis';
import { StreamEvent, type RedisKeys, type StreamEventBody, isTerminalEvent } from '@switchyard/protocol';
import { AdmissionLedger } from './admission-ledger.js';
import { ENVELOPE_HEADER } from './event-envelope.js';
import { defineScripts } from './scripts.js';

export interface EventLogOptions {
  /** Upper bound on events kept per job; a long generation is coalesced well below it. */
  maxEvents?: number;
  /** How long an unfinished job's log lives (set by its first event). */
  liveTtlSeconds?: number;
  /** How long a finished job's log stays readable for late reconnects. */
  finishedTtlSeconds?: number;
}

/**
 * Writes a job's events to its live channel and its replay log in one round trip.
 *
 * The script (lua/append-event-2.lua) assigns `seq` (INCR), appends to the stream with the
 * explicit entry id `0-<seq>` (so a reader resumes with an exclusive XRANGE from
 * `Last-Event-ID`), and publishes the same payload. Assigning `seq` in Redis rather than in
 * the agent keeps it strictly increasing when a job is retried on another agent.
 *
 * With `onlyIfEmpty` the event is written only if the job has no event yet: the API's
 * `queued` event must never land after an agent's `started`. With `onlyIfLastIsQueued` it
 * is written only while the newest event is a `queued` one (the API's position updates).
 *
 * The log also settles the job's admission reservation (see `AdmissionLedger`): a
 * `started` event moves it from queued to running, a terminal event releases it. The
 * ledger call goes out right behind the append on the same connection, so whoever writes
 * a job's events (an agent, the API) keeps the admission counts right without knowing it.
 */
export class EventLog {
  private readonly maxEvents: number;
  private readonly liveTtlSeconds: number;
  private readonly finishedTtlSeconds: number;
  private readonly ledger: AdmissionLedger;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    options: EventLogOptions = {},
  ) {
    this.maxEvents = options.maxEvents ?? 100_000;
    this.liveTtlSeconds = options.liveTtlSeconds ?? 24 * 3600;
    this.finishedTtlSeconds = options.finishedTtlSeconds ?? 3600;
    defineScripts(redis);
    this.ledger = new AdmissionLedger(redis, keys);
  }

  /** Appends one event; resolves with its `seq` (0 when a condition kept it out). */
  async append(jobId: string, event: StreamEventBody, options: { onlyIfEmpty?: boolean; onlyIfLastIsQueued?: boolean } = {}): Promise<number> {
    const terminal = isTerminalEvent(event);
    const ttl = terminal ? this.finishedTtlSeconds : this.liveTtlSeconds;
    const written = this.redis.sy_append_event_v1(
      this.keys.jobSeq(jobId),
      this.keys.jobEvents(jobId),
      this.keys.jobChannel(jobId),
      JSON.stringify(event),
      this.maxEvents,
      ttl,
      options.onlyIfEmpty ? '1' : options.onlyIfLastIsQueued ? '2' : '0',
      terminal ? '1' : '0',
    );
    // A failed ledger update is not the event's failure: the API's reconciliation repairs it.
    let settled: Promise<unknown> | undefined;
    if (event.type === 'started') {
      settled = this.ledger.started(jobId, { cold: event.cold, loadMs: event.load_ms }).catch(() => undefined);
    } else if (event.type === 'done' || event.type === 'error') {
      settled = this.ledger.release(jobId, event.type, event.type === 'error' ? event.code : '').catch(() => undefined);
    }
    const [seq] = await Promise.all([written, settled]);
    return seq;
  }

  /**
   * Events with `seq > afterSeq` as written, without parsing their JSON: the relay forwards
   * payloads as they are (see `rawEvent`). Entries without a valid header are skipped.
   */
  async readRawAfter(jobId: string, afterSeq: number, count?: number): Promise<RawEvent[]> {
    const start = afterSeq > 0 ? `(0-${afterSeq}` : '-';
    const key = this.keys.jobEvents(jobId);
    const entries = count === undefined ? await this.redis.xrange(key, start, '+') : await this.redis.xrange(key, start, '+', 'COUNT', count);
    const events: RawEvent[] = [];
    for (const [, fields] of entries) {
      const raw = rawEvent(fields[1]);
      if (raw) events.push(raw);
    }
    return events;
  }

  /** Events with `seq > afterSeq`, in order, parsed. Entries that fail validation are skipped, not fatal. */
  async readAfter(jobId: string, afterSeq: number, count?: number): Promise<StreamEvent[]> {
    const events: StreamEvent[] = [];
    for (const raw of await this.readRawAfter(jobId, afterSeq, count)) {
      const event = parseEventPayload(raw.payload);
      if (event) events.push(event);
    }
    return events;
  }

  /** The last event written, if any. */
  async last(jobId: string): Promise<StreamEvent | undefined> {
    const entries = await this.redis.xrevrange(this.keys.jobEvents(jobId), '+', '-', 'COUNT', 1);
    const fields = entries[0]?.[1];
    return fields ? parseEventPayload(fields[1]) : undefined;
  }
}

/** An event as stored and published: its payload JSON, and the two fields the relay needs. */
export interface RawEvent {
  seq: number;
  type: string;
  payload: string;
}

/**
 * Reads `seq` and `type` off a payload without parsing it. Relaying 100k tokens/s, a full
 * JSON.parse + schema check per event per client was the API's largest cost (bench:relay);
 * payloads come only from EventLog.append, whose input is typed.
 */
export function rawEvent(payload: string | undefined): RawEvent | undefined {
  if (payload === undefined) return undefined;
  const match = ENVELOPE_HEADER.exec(payload);
  return match ? { seq: Number(match[1]), type: match[2]!, payload } : undefined;
}

/** Parses a payload read from Redis; undefined when it is not a valid event. */
export function parseEventPayload(payload: string | undefined): StreamEvent | undefined {
  if (payload === undefined) return undefined;
  try {
    const result = StreamEvent.safeParse(JSON.parse(payload));
    return result.success ? (result.data as StreamEvent) : undefined;
  } catch {
    return undefined;
  }
}
