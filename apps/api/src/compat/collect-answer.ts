import { CompatErrorCode, type StreamEvent, type ToolCallResult } from '@switchyard/protocol';
import { answerFromEvents, type Answer } from '../answer.js';
import { CompatError, jobFailureError } from './compat-error.js';

export interface CollectedAnswer extends Answer {
  /** The calls the model answered with, in order (empty when it answered in text). */
  toolCalls: ToolCallResult[];
  /** An embed job's vectors (from its `done` event). */
  embeddings?: number[][];
}

/**
 * Reads a job's events to the end for a non-streaming answer (see `answerFromEvents`); a
 * non-streaming client never sees a restart. Throws the job's failure as the client's error;
 * resolves undefined when the events stop without a terminal one (the client went away).
 */
export async function collectAnswer(events: AsyncIterable<StreamEvent>): Promise<CollectedAnswer | undefined> {
  const seen: StreamEvent[] = [];
  let toolCalls: ToolCallResult[] = [];
  for await (const event of events) {
    if (event.type === 'error') throw jobFailureError(event.code, event.message);
    seen.push(event);
    // A restart voids everything the attempt before it answered, its calls with its text.
    if (event.type === 'restarted') toolCalls = [];
    if (event.type === 'tool_call') toolCalls.push({ id: event.id, name: event.name, arguments: event.arguments });
    if (event.type === 'done') {
      const answer = answerFromEvents(seen)!;
      return { ...answer, toolCalls, ...(event.embeddings !== undefined && { embeddings: event.embeddings }) };
    }
  }
  return undefined;
}

/** Message for a stream that cannot take back output it already sent. */
export const RESTARTED_AFTER_OUTPUT =
  'the job lost its GPU node after part of the answer was sent and was restarted elsewhere; the partial answer is void (retry the request)';

export function restartedAfterOutput(): CompatError {
  return new CompatError(502, CompatErrorCode.restarted, RESTARTED_AFTER_OUTPUT);
}
