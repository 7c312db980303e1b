import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { StreamEvent } from '@switchyard/protocol';

export interface SseResult {
  status: number;
  headers: Headers;
  events: StreamEvent[];
  /** Raw SSE messages (id, event name, data) as parsed off the wire. */
  messages: EventSourceMessage[];
}

/**
 * Reads an SSE response with a maintained parser (not a hand-written one) until the
 * server ends it, `stopAfter` says stop, or the signal aborts. Returns what arrived.
 */
export async function readSse(
  url: string,
  options: { lastEventId?: string; stopAfter?: (event: StreamEvent) => boolean; signal?: AbortSignal; timeoutMs?: number } = {},
): Promise<SseResult> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error('SSE read timed out')), options.timeoutMs ?? 15_000);
  options.signal?.addEventListener('abort', () => controller.abort(options.signal?.reason));
  const headers: Record<string, string> = { Accept: 'text/event-stream' };
  if (options.lastEventId !== undefined) headers['Last-Event-ID'] = options.lastEventId;
  const response = await fetch(url, { headers, signal: controller.signal });
  const events: StreamEvent[] = [];
  const messages: EventSourceMessage[] = [];
  let stop = false;
  const parser = createParser({
    onEvent: (message) => {
      messages.push(message);
      const event = JSON.parse(message.data) as StreamEvent;
      events.push(event);
      if (options.stopAfter?.(event)) stop = true;
    },
  });
  try {
    if (response.status === 200 && response.body) {
      const decoder = new TextDecoder();
      for await (const chunk of response.body) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        if (stop) break;
      }
    }
  } catch (error) {
    if (!controller.signal.aborted || options.signal?.aborted !== true) {
      if (!(controller.signal.reason instanceof Error && controller.signal.reason.message === 'SSE read timed out')) throw error;
      throw controller.signal.reason;
    }
  } finally {
    clearTimeout(timer);
    if (stop || options.signal?.aborted) controller.abort();
  }
  return { status: response.status, headers: response.headers, events, messages };
}

export function textOf(events: StreamEvent[]): string {
  return events.map((event) => (event.type === 'token' ? event.text : '')).join('');
}
