import type { StreamEvent } from '@switchyard/protocol';

export interface Answer {
  text: string;
  done: Extract<StreamEvent, { type: 'done' }>;
  /** The agent that produced the answer (from the last `started` event). */
  agent?: string;
}

/**
 * A job's answer as its event log tells it, up to its `done` event; undefined if the log has
 * none. A `restarted` event voids the text before it (the job ran again elsewhere).
 */
export function answerFromEvents(events: Iterable<StreamEvent>): Answer | undefined {
  let text = '';
  let agent: string | undefined;
  for (const event of events) {
    if (event.type === 'token') text += event.text;
    else if (event.type === 'restarted') text = '';
    else if (event.type === 'started') agent = event.agent;
    else if (event.type === 'done') return { text, done: event, ...(agent !== undefined && { agent }) };
  }
  return undefined;
}
