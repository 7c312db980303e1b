import { afterEach, describe, expect, it, vi } from 'vitest';
import { SwitchyardClient, SwitchyardError, type StreamEvent } from './index.js';

type Reply = {
  status?: number;
  headers?: Record<string, string>;
  chunks?: string[];
  failAfterChunks?: boolean;
  /** After its chunks the connection stays open and silent (a dead peer that never closed it). */
  hangAfterChunks?: boolean;
  /** A body the test writes to as it goes. */
  pushed?: PushedBody;
  body?: string;
};

/** A response body the test feeds chunk by chunk. */
class PushedBody {
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly stream = new ReadableStream<Uint8Array>({ start: (controller) => void (this.controller = controller) });
  push(text: string): void {
    this.controller.enqueue(new TextEncoder().encode(text));
  }
}

/** A fetch that answers the event stream route with scripted connections, recording each request. */
function scriptedFetch(replies: Reply[]) {
  const requests: Array<{ url: string; lastEventId: string | null }> = [];
  const fetchImpl = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    requests.push({ url: String(input), lastEventId: headers.get('last-event-id') });
    const reply = replies.shift();
    if (!reply) throw new TypeError('fetch failed: no more scripted replies');
    if (reply.body !== undefined || (reply.status ?? 200) !== 200) {
      return new Response(reply.body ?? null, { status: reply.status ?? 200, headers: reply.headers ?? { 'content-type': 'application/json' } });
    }
    const encoder = new TextEncoder();
    const chunks = [...(reply.chunks ?? [])];
    const stream =
      reply.pushed?.stream ??
      new ReadableStream<Uint8Array>({
        pull(controller) {
          const chunk = chunks.shift();
          if (chunk !== undefined) controller.enqueue(encoder.encode(chunk));
          else if (reply.failAfterChunks) controller.error(new TypeError('terminated'));
          else if (reply.hangAfterChunks) return new Promise<void>(() => undefined);
          else controller.close();
          return undefined;
        },
      });
    return new Response(stream, { status: 200, headers: { 'content-type': 'text/event-stream', ...reply.headers } });
  }) as typeof fetch;
  return { fetchImpl, requests };
}

const sse = (event: Record<string, unknown> & { seq: number; type: string }) => `id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
const token = (seq: number, text: string) => sse({ seq, type: 'token', text });
const done = (seq: number) =>
  sse({ seq, type: 'done', finish_reason: 'stop', usage: { prompt_tokens: 1, completion_tokens: 2 }, timings: { queued_ms: 0, load_ms: 0, ttft_ms: 1, total_ms: 2 } });

async function collect(client: SwitchyardClient, options: Parameters<SwitchyardClient['stream']>[1] = {}): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const event of client.stream('job1', options)) events.push(event);
  return events;
}

describe('stream()', () => {
  it('resumes a dropped connection with Last-Event-ID, dropping duplicates', async () => {
    const { fetchImpl, requests } = scriptedFetch([
      // The first connection breaks in the middle of event 3.
      { chunks: [sse({ seq: 1, type: 'queued', position: 0, depth: 1 }), token(2, 'a'), token(3, 'b').slice(0, 12)], failAfterChunks: true },
      { chunks: [token(2, 'a'), token(3, 'b'), done(4)] },
    ]);
    const client = new SwitchyardClient({ baseUrl: 'http://api.test/', fetch: fetchImpl });
    const events = await collect(client);
    expect(events.map((event) => event.seq)).toEqual([1, 2, 3, 4]);
    expect(requests.map((request) => request.lastEventId)).toEqual([null, '2']);
    expect(requests[0]!.url).toBe('http://api.test/v1/jobs/job1/events');
  });

  it('reconnects to refill a gap instead of skipping events', async () => {
    const { fetchImpl, requests } = scriptedFetch([{ chunks: [token(1, 'a'), token(3, 'c')] }, { chunks: [token(2, 'b'), token(3, 'c'), done(4)] }]);
    const events = await collect(new SwitchyardClient({ baseUrl: 'http://api.test', fetch: fetchImpl }));
    expect(events.map((event) => event.seq)).toEqual([1, 2, 3, 4]);
    expect(requests[1]!.lastEventId).toBe('1');
  });

  it('stops on 204 and after a terminal event, and resumes from a given lastEventId', async () => {
    const { fetchImpl, requests } = scriptedFetch([{ status: 204 }]);
    const client = new SwitchyardClient({ baseUrl: 'http://api.test', fetch: fetchImpl });
    expect(await collect(client, { lastEventId: '7' })).toEqual([]);
    expect(requests[0]!.lastEventId).toBe('7');
  });

  it('rejects events that fail the protocol schema', async () => {
    const { fetchImpl } = scriptedFetch([{ chunks: [sse({ seq: 1, type: 'token', text: 42 })] }]);
    const error = await collect(new SwitchyardClient({ baseUrl: 'http://api.test', fetch: fetchImpl })).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(SwitchyardError);
    expect((error as SwitchyardError).code).toBe('invalid_response');
  });

  it('retries a 503 after Retry-After, within the budget, and gives up beyond it', async () => {
    const refusal = {
      status: 503,
      headers: { 'content-type': 'application/json', 'retry-after': '0' },
      body: JSON.stringify({ error: { code: 'no_capacity', message: 'busy' } }),
    };
    const ok = scriptedFetch([refusal, { chunks: [done(1)] }]);
    expect((await collect(new SwitchyardClient({ baseUrl: 'http://api.test', fetch: ok.fetchImpl }))).map((event) => event.type)).toEqual(['done']);

    const long = { ...refusal, headers: { ...refusal.headers, 'retry-after': '120' } };
    const refused = scriptedFetch([long]);
    const started = Date.now();
    const error = (await collect(new SwitchyardClient({ baseUrl: 'http://api.test', fetch: refused.fetchImpl, retry: { maxWaitMs: 1_000 } })).catch(
      (caught: unknown) => caught,
    )) as SwitchyardError;
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(error).toMatchObject({ code: 'no_capacity', status: 503, retryAfterS: 120 });
  });

  it('gives up after the configured number of failed reconnects', async () => {
    const { fetchImpl, requests } = scriptedFetch([]);
    const client = new SwitchyardClient({ baseUrl: 'http://api.test', fetch: fetchImpl, reconnect: { maxAttempts: 2, initialDelayMs: 1 } });
    const error = (await collect(client).catch((caught: unknown) => caught)) as SwitchyardError;
    expect(error.code).toBe('connection_failed');
    expect(requests.length).toBe(3);
  });

  it('ends with the abort reason when the signal aborts', async () => {
    const { fetchImpl } = scriptedFetch([{ chunks: [token(1, 'a')], failAfterChunks: false }, { chunks: [] }, { chunks: [] }]);
    const controller = new AbortController();
    const client = new SwitchyardClient({ baseUrl: 'http://api.test', fetch: fetchImpl });
    const seen: StreamEvent[] = [];
    const error = await (async () => {
      for await (const event of client.stream('job1', { signal: controller.signal })) {
        seen.push(event);
        controller.abort(new Error('user stop'));
      }
    })().catch((caught: unknown) => caught);
    expect(seen.length).toBe(1);
    expect((error as Error).message).toBe('user stop');
  });

  describe('stall timeout', () => {
    afterEach(() => void vi.useRealTimers());

    it('replaces a connection that brings nothing for stallTimeoutMs, resuming with Last-Event-ID', async () => {
      // The first connection stays open and silent after event 2: only the stall timeout moves on.
      const { fetchImpl, requests } = scriptedFetch([
        { chunks: [sse({ seq: 1, type: 'queued', position: 0, depth: 1 }), token(2, 'a')], hangAfterChunks: true },
        { chunks: [token(3, 'b'), done(4)] },
      ]);
      const client = new SwitchyardClient({ baseUrl: 'http://api.test', fetch: fetchImpl, reconnect: { stallTimeoutMs: 50 } });
      const reconnects: unknown[] = [];
      const events = await collect(client, { onReconnect: (info) => reconnects.push(info.error) });
      expect(events.map((event) => event.seq)).toEqual([1, 2, 3, 4]);
      expect(requests.map((request) => request.lastEventId)).toEqual([null, '2']);
      expect(reconnects).toHaveLength(1);
      expect(reconnects[0]).toMatchObject({ name: 'StreamStalled' });
    });

    it('counts heartbeat comments as life, and not the time the caller spends on an event', async () => {
      vi.useFakeTimers();
      const body = new PushedBody();
      const { fetchImpl, requests } = scriptedFetch([{ pushed: body }]);
      const client = new SwitchyardClient({ baseUrl: 'http://api.test', fetch: fetchImpl });
      const seqs: number[] = [];
      const reading = (async () => {
        for await (const event of client.stream('job1')) {
          seqs.push(event.seq);
          // A slow consumer: a minute on its first event, longer than the 45 s default.
          if (event.seq === 1) await new Promise((resolve) => setTimeout(resolve, 60_000));
        }
      })();
      body.push(token(1, 'a'));
      await vi.advanceTimersByTimeAsync(60_000);
      expect(seqs).toEqual([1]);
      // A quiet job: only the API's heartbeat (every 15 s by default) for two minutes.
      for (let second = 0; second < 120; second += 15) {
        body.push(': keep-alive\n\n');
        await vi.advanceTimersByTimeAsync(15_000);
      }
      body.push(done(2));
      await reading;
      expect(seqs).toEqual([1, 2]);
      expect(requests).toHaveLength(1);
    });

    it('is off with stallTimeoutMs: 0', async () => {
      vi.useFakeTimers();
      const body = new PushedBody();
      const { fetchImpl, requests } = scriptedFetch([{ pushed: body }]);
      const client = new SwitchyardClient({ baseUrl: 'http://api.test', fetch: fetchImpl, reconnect: { stallTimeoutMs: 0 } });
      const reading = collect(client);
      body.push(token(1, 'a'));
      await vi.advanceTimersByTimeAsync(10 * 60_000);
      body.push(done(2));
      expect((await reading).map((event) => event.seq)).toEqual([1, 2]);
      expect(requests).toHaveLength(1);
    });
  });
});
