import { z } from 'zod';
import { Embeddings, FinishReason, Timings, ToolCallResult, Usage } from './job.js';

/**
 * Stream events. Every job has one ordered sequence; `seq` starts at 1 and never
 * repeats within a job. `done` and `error` end the stream; cancellation and expiry are
 * `error` events with codes `cancelled` and `deadline_exceeded`.
 */
export const QueuedEvent = z.object({
  type: z.literal('queued'),
  position: z.number().int().nonnegative(),
  depth: z.number().int().nonnegative(),
  /** Estimated seconds until the job starts (absent while the model has no measured drain rate). */
  eta_s: z.number().nonnegative().optional(),
});
export const StartedEvent = z.object({
  type: z.literal('started'),
  agent: z.string(),
  cold: z.boolean(),
  load_ms: z.number().nonnegative(),
});
export const TokenEvent = z.object({ type: z.literal('token'), text: z.string() });
/** One whole call the model made (Ollama sends calls whole, not in fragments); `index` counts from 0 within the job. */
export const ToolCallEvent = ToolCallResult.extend({ type: z.literal('tool_call'), index: z.number().int().nonnegative() });
export const RestartedEvent = z.object({
  type: z.literal('restarted'),
  reason: z.string(),
  attempt: z.number().int().positive(),
});
/**
 * The job runs again after losing its agent or backend, continuing from the text already
 * streamed (events up to `after_seq`): nothing is void, the tokens that follow continue it.
 */
export const ResumedEvent = z.object({
  type: z.literal('resumed'),
  attempt: z.number().int().positive(),
  after_seq: z.number().int().nonnegative(),
});
export const DoneEvent = z.object({
  type: z.literal('done'),
  finish_reason: FinishReason,
  usage: Usage,
  timings: Timings,
  /** An embed job's vectors, one per input in input order (the job's only output). */
  embeddings: Embeddings.optional(),
});
export const ErrorEvent = z.object({
  type: z.literal('error'),
  /** A JobErrorCode when Switchyard wrote it; any string is read, so a newer agent's codes still arrive. */
  code: z.string(),
  message: z.string(),
});

/** An event as a producer writes it, before the log assigns its `seq`. */
export const StreamEventBody = z.discriminatedUnion('type', [QueuedEvent, StartedEvent, TokenEvent, ToolCallEvent, RestartedEvent, ResumedEvent, DoneEvent, ErrorEvent]);
export type StreamEventBody = z.infer<typeof StreamEventBody>;

export const StreamEvent = z.intersection(z.object({ seq: z.number().int().positive() }), StreamEventBody);
export type StreamEvent = StreamEventBody & { seq: number };
export type StreamEventType = StreamEventBody['type'];

export function isTerminalEvent(event: { type: string }): boolean {
  return event.type === 'done' || event.type === 'error';
}
