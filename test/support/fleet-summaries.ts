import { createParser } from 'eventsource-parser';
import type { FleetSummary } from '@switchyard/api';

/**
 * The fleet page's stream (`GET /admin/fleet/events`) read as the page reads it: each
 * `summary` event in order. `next(until)` waits for the first summary `until` accepts
 * (every one by default); `close()` ends the connection.
 */
export async function fleetSummaries(apiUrl: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const response = await fetch(`${apiUrl}/admin/fleet/events`, { headers: { Accept: 'text/event-stream', ...headers }, signal: controller.signal });
  if (response.status !== 200 || !response.body) throw new Error(`fleet events answered ${response.status}: ${await response.text()}`);
  const pending: FleetSummary[] = [];
  const parser = createParser({
    onEvent: (message) => {
      if (message.event === 'summary') pending.push(JSON.parse(message.data) as FleetSummary);
    },
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  return {
    response,
    async next(until: (summary: FleetSummary) => boolean = () => true, timeoutMs = 20_000): Promise<FleetSummary> {
      const deadline = Date.now() + timeoutMs;
      let seen: FleetSummary | undefined;
      for (;;) {
        while (pending.length > 0) {
          seen = pending.shift()!;
          if (until(seen)) return seen;
        }
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no matching fleet summary within ${timeoutMs} ms; the last one: ${JSON.stringify(seen)?.slice(0, 2000)}`);
        let timer: NodeJS.Timeout | undefined;
        const chunk = await Promise.race([reader.read(), new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), left)))]);
        clearTimeout(timer);
        if (chunk === 'timeout') continue;
        if (chunk.done) throw new Error('the fleet events stream ended');
        parser.feed(decoder.decode(chunk.value, { stream: true }));
      }
    },
    close: () => controller.abort(),
  };
}
