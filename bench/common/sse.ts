/**
 * Reading Switchyard's job event streams in the load generators: one SSE parser (the
 * maintained eventsource-parser, as the SDK uses) for every benchmark.
 */
import { createParser } from 'eventsource-parser';

/** A job event as it arrives: the SSE data is the event's JSON, `type` included. */
export interface WireEvent {
  type: string;
  seq: number;
  text?: string;
  agent?: string;
  cold?: boolean;
  code?: string;
  message?: string;
  timings?: { queued_ms: number; load_ms: number; ttft_ms: number; total_ms: number };
}

/**
 * Feeds an SSE body (undici's or fetch's) to `onEvent` until it returns true or the stream
 * ends; leaving the loop early closes the body. True when `onEvent` stopped it.
 */
export async function consumeSse(body: AsyncIterable<unknown>, onEvent: (event: WireEvent) => boolean | void): Promise<boolean> {
  let stop = false;
  const parser = createParser({
    onEvent: (message) => {
      if (!stop && onEvent(JSON.parse(message.data) as WireEvent) === true) stop = true;
    },
  });
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    parser.feed(typeof chunk === 'string' ? chunk : decoder.decode(chunk as Uint8Array, { stream: true }));
    if (stop) break;
  }
  return stop;
}
