import type { RedisConnection } from './connection.js';
import { StreamEvent, type RedisKeys } from '@switchyard/protocol';
import { ENVELOPE_HEADER, envelope } from './event-envelope.js';

/**
 * Reads a job's events: its replay log (a stream, entry id `0-<seq>`) as the relay and the
 * job records need it. Events are written only by the job's transitions (`JobLifecycle`),
 * which append to the log and publish on the job's live channel in the same script.
 */
export class EventLog {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: RedisKeys,
  ) {}

  /**
   * Events with `seq > afterSeq` as written, without parsing their JSON: the relay forwards
   * payloads as they are (see `rawEvent`). Entries without a valid header are skipped.
   */
  async readRawAfter(jobId: string, afterSeq: number, count?: number): Promise<RawEvent[]> {
    const start = afterSeq > 0 ? `(0-${afterSeq}` : '-';
    const key = this.keys.jobEvents(jobId);
    const entries = count === undefined ? await this.redis.xrange(key, start, '+') : await this.redis.xrange(key, start, '+', 'COUNT', count);
    const events: RawEvent[] = [];
    for (const [id, fields] of entries) {
      const raw = storedEvent(id, fields);
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
    const [entry] = await this.redis.xrevrange(this.keys.jobEvents(jobId), '+', '-', 'COUNT', 1);
    return entry ? parseEventPayload(storedEvent(entry[0], entry[1])?.payload) : undefined;
  }
}

/** An event as stored and published: its payload JSON, and the two fields the relay needs. */
export interface RawEvent {
  seq: number;
  type: string;
  payload: string;
}

/** A stream entry as the payload the live channel carried: its id `0-<seq>` gives the seq. */
function storedEvent(id: string, fields: string[]): RawEvent | undefined {
  const body = fields[1];
  const seq = Number(id.slice(2));
  if (body === undefined || !id.startsWith('0-') || !Number.isSafeInteger(seq) || seq < 1 || !body.startsWith('{')) return undefined;
  return rawEvent(envelope(seq, body));
}

/**
 * Reads `seq` and `type` off a payload without parsing it. Relaying 100k tokens/s, a full
 * JSON.parse + schema check per event per client was the API's largest cost (bench:relay);
 * payloads come only from the job transitions, whose input is typed.
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
    const value = JSON.parse(payload) as unknown;
    // Most events are tokens: checked field by field as the schema checks them (which cost
    // the compatible wires a tenth of the API's CPU, bench:trace profile); the rest by it.
    const token = tokenEventOf(value);
    if (token !== undefined) return token;
    const result = StreamEvent.safeParse(value);
    return result.success ? (result.data as StreamEvent) : undefined;
  } catch {
    return undefined;
  }
}

/** A token event as `StreamEvent` parses it (unknown fields dropped), or undefined for anything else. */
function tokenEventOf(value: unknown): StreamEvent | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { seq, type, text } = value as Record<string, unknown>;
  if (type !== 'token' || typeof text !== 'string' || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 1) return undefined;
  return { seq, type, text };
}
