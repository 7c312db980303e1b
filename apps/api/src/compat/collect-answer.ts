import { CompatErrorCode, type StreamEvent } from '@switchyard/protocol';
import { answerFromEvents, type Answer } from '../answer.js';
import { CompatError, jobFailureError } from './compat-error.js';

export type CollectedAnswer = Answer;

/**
 * Reads a job's events to the end for a non-streaming answer (see `answerFromEvents`); a
 * non-streaming client never sees a restart. Throws the job's failure as the client's error;
 * resolves undefined when the events stop without a terminal one (the client went away).
 */
export async function collectAnswer(events: AsyncIterable<StreamEvent>): Promise<CollectedAnswer | undefined> {
  const seen: StreamEvent[] = [];
  for await (const event of events) {
    if (event.type === 'error') throw jobFailureError(event.code, event.message);
    seen.push(event);
    if (event.type === 'done') return answerFromEvents(seen);
  }
  return undefined;
}

/** Message for a stream that cannot take back output it already sent. */
export const RESTARTED_AFTER_OUTPUT =
  'the job lost its GPU node after part of the answer was sent and was restarted elsewhere; the partial answer is void (retry the request)';

export function restartedAfterOutput(): CompatError {
  return new CompatError(502, CompatErrorCode.restarted, RESTARTED_AFTER_OUTPUT);
}
