import type { ServerResponse } from 'node:http';
import { isTerminalEvent, type StreamEvent } from '@switchyard/protocol';
import { parseEventPayload, type RawEvent } from '@switchyard/redis';
import type { JobEventFeed } from './job-event-feed.js';

export interface RelayOptions {
  jobId: string;
  /** Last `seq` the client has (from `Last-Event-ID`); 0 for a fresh stream. */
  afterSeq: number;
  heartbeatMs: number;
  /** Resolves to true when the job has ended (used when its log has nothing newer). */
  jobEnded: () => Promise<boolean>;
  onEvent?: (event: StreamEvent) => void;
}

/** `done` resolves when the response ended: true when it carried the job's terminal event, false when the client went away first. */
export type RelayStart = { kind: 'stream'; done: Promise<boolean> } | { kind: 'nothing-more' };

/**
 * Formats one event on the SSE wire: `id` is the seq, `event` the type, `data` the JSON as
 * stored in Redis (one line: JSON.stringify never emits raw newlines), never re-serialised.
 */
export function formatSseEvent(event: RawEvent): string {
  return `id: ${event.seq}\nevent: ${event.type}\ndata: ${event.payload}\n\n`;
}

/**
 * Relays one job's events to one SSE response (the native API): headers, heartbeat
 * comments, one SSE message per event, and the end of the response after a terminal event
 * or when the client goes away.
 */
export class EventRelay {
  /** Open streams, so a draining replica can end them with a reconnect hint. */
  private readonly open = new Set<{ response: ServerResponse; close: () => void }>();

  constructor(private readonly feed: JobEventFeed) {}

  /**
   * Ends every open stream with an SSE `retry:` hint, so clients reconnect at once (with
   * Last-Event-ID, to another replica behind the balancer) instead of after EventSource's
   * default delay; the job goes on. Used by a replica that is stopping.
   */
  endAll(retryMs: number): number {
    const streams = [...this.open];
    for (const stream of streams) {
      if (!stream.response.writableEnded) stream.response.write(`retry: ${retryMs}\n\n`);
      stream.close();
    }
    return streams.length;
  }

  async start(response: ServerResponse, options: RelayOptions): Promise<RelayStart> {
    let resolveDone!: (ended: boolean) => void;
    const done = new Promise<boolean>((resolve) => (resolveDone = resolve));
    let ended = false;
    let heartbeat: NodeJS.Timeout | undefined;
    const onClose = () => feed?.close();

    const feed = await this.feed.open(
      {
        jobId: options.jobId,
        afterSeq: options.afterSeq,
        onRaw: (event) => {
          // Only `done` feeds a metric; nothing else is parsed on the relay path.
          if (event.type === 'done' && options.onEvent) {
            const parsed = parseEventPayload(event.payload);
            if (parsed) options.onEvent(parsed);
          }
          if (isTerminalEvent(event)) ended = true;
          response.write(formatSseEvent(event));
        },
        onEnd: () => {
          if (heartbeat) clearInterval(heartbeat);
          response.off('close', onClose);
          if (!response.writableEnded) response.end();
          resolveDone(ended);
        },
      },
      options.jobEnded,
    );
    if (!feed) return { kind: 'nothing-more' };

    response.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    response.flushHeaders();
    response.on('close', onClose);
    heartbeat = setInterval(() => response.write(': keep-alive\n\n'), options.heartbeatMs);
    heartbeat.unref();
    const entry = { response, close: () => feed.close() };
    this.open.add(entry);
    void done.then(() => this.open.delete(entry));
    feed.start();
    return { kind: 'stream', done };
  }
}
