import type { StreamEvent } from '@switchyard/protocol';
import { CompatError, jobFailureError } from './compat-error.js';

export interface CollectedAnswer {
  text: string;
  done: Extract<StreamEvent, { type: 'done' }>;
  /** The agent that produced the answer (from the last `started` event). */
  agent?: string;
}

/**
 * Reads a job's events to the end for a non-streaming answer. A `restarted` event voids the
 * text so far (the job runs again elsewhere), which a non-streaming client never sees.
 * Resolves undefined when the events stop without a terminal one (the client went away).
 */
export async function collectAnswer(events: AsyncIterable<StreamEvent> | Iterable<StreamEvent>): Promise<CollectedAnswer | undefined> {
  let text = '';
  let agent: string | undefined;
  for await (const event of events) {
    switch (event.type) {
      case 'token':
        text += event.text;
        break;
      case 'restarted':
        text = '';
        break;
      case 'started':
        agent = event.agent;
        break;
      case 'done':
        return { text, done: event, ...(agent !== undefined && { agent }) };
      case 'error':
        throw jobFailureError(event.code, event.message);
      default:
        break;
    }
  }
  return undefined;
}

/** Message for a stream that cannot take back output it already sent. */
export const RESTARTED_AFTER_OUTPUT =
  'the job lost its GPU node after part of the answer was sent and was restarted elsewhere; the partial answer is void (retry the request)';

export function restartedAfterOutput(): CompatError {
  return new CompatError(502, 'restarted', RESTARTED_AFTER_OUTPUT);
}
