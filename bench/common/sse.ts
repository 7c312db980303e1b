/**
 * Reading Switchyard's job event streams in the load generators: one SSE parser (the
 * maintained eventsource-parser, as the SDK uses) for every benchmark.
 */
import { createParser } from 'eventsource-parser';
import type { StreamEvent } from '@switchyard/protocol';

/**
 * Feeds an SSE body (undici's or fetch's) to `onEvent` (the data is the event's JSON, `type`
 * included; the API validated it before storing it) until it returns true or the stream
 * ends; leaving the loop early closes the body. True when `onEvent` stopped it.
 */
export async function consumeSse(body: AsyncIterable<unknown>, onEvent: (event: StreamEvent) => boolean | void): Promise<boolean> {
  let stop = false;
  const parser = createParser({
    onEvent: (message) => {
      if (!stop && onEvent(JSON.parse(message.data) as StreamEvent) === true) stop = true;
    },
  });
  const decoder = new TextDecoder();
  for await (const chunk of body) {
    parser.feed(typeof chunk === 'string' ? chunk : decoder.decode(chunk as Uint8Array, { stream: true }));
    if (stop) break;
  }
  return stop;
}
