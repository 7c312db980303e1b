import { createParser } from 'eventsource-parser';
import type { FleetSummary } from '@switchyard/api';

/**
 * The fleet page's stream (`GET /admin/fleet/events`) read as the page reads it, event by
 * event. `next(until)` waits for the first `summary` event `until` accepts (every one by
 * default), skipping others; `nextError()` for the first `error` event; `close()` ends the
 * connection; `ended` resolves when the server ends it.
 */
export async function fleetSummaries(apiUrl: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(`${apiUrl}/admin/fleet/events`, { headers: { Accept: 'text/event-stream', ...headers }, signal: controller.signal });
  if (response.status !== 200 || !response.body) throw new Error(`fleet events answered ${response.status}: ${await response.text()}`);
  const pending: Array<{ event: string; data: unknown }> = [];
  const parser = createParser({ onEvent: (message) => void pending.push({ event: message.event ?? 'message', data: JSON.parse(message.data) }) });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  // One read outstanding at a time: a read left behind by a timeout keeps its chunk for the next wait.
  let reading: Promise<ReadableStreamReadResult<Uint8Array>> | undefined;
  const read = (timeoutMs: number): Promise<ReadableStreamReadResult<Uint8Array> | 'timeout'> => {
    const current = (reading ??= reader.read());
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      current.then((result) => {
        reading = undefined;
        return result;
      }),
      new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), Math.max(0, timeoutMs)))),
    ]).finally(() => clearTimeout(timer));
  };
  return {
    response,
    /** The first event named `event` that `until` accepts. */
    async nextEvent<T>(event: string, until: (data: T) => boolean = () => true, timeoutMs = 20_000): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      let seen: unknown;
      for (;;) {
        while (pending.length > 0) {
          const message = pending.shift()!;
          if (message.event !== event) continue;
          seen = message.data;
          if (until(message.data as T)) return message.data as T;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no matching ${event} event within ${timeoutMs} ms; the last one: ${JSON.stringify(seen)?.slice(0, 2000)}`);
        const chunk = await read(left);
        if (chunk === 'timeout') continue;
        if (chunk.done) throw new Error('the fleet events stream ended');
        parser.feed(decoder.decode(chunk.value, { stream: true }));
      }
    },
    next(until: (summary: FleetSummary) => boolean = () => true, timeoutMs = 20_000): Promise<FleetSummary> {
      return this.nextEvent<FleetSummary>('summary', until, timeoutMs);
    },
    nextError(timeoutMs = 20_000): Promise<{ error: { code: string; message: string } }> {
      return this.nextEvent('error', () => true, timeoutMs);
    },
    /** Reads to the end of the stream (the server ended it); rejects if it does not end within `timeoutMs`. */
    async ended(timeoutMs = 10_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const chunk = await read(deadline - Date.now());
        if (chunk === 'timeout') throw new Error(`the fleet events stream did not end within ${timeoutMs} ms`);
        if (chunk.done) return;
      }
    },
    close: () => controller.abort(),
  };
}
