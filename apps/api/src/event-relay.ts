import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isTerminalEvent, type RedisKeys, type StreamEvent } from '@switchyard/protocol';
import { parseEventPayload, type EventLog, type SharedSubscriber } from '@switchyard/redis';

export interface RelayOptions {
  jobId: string;
  /** Last `seq` the client has (from `Last-Event-ID`); 0 for a fresh stream. */
  afterSeq: number;
  heartbeatMs: number;
  /** Resolves to true when the job has ended (used when its log has nothing newer). */
  jobEnded: () => Promise<boolean>;
  onEvent?: (event: StreamEvent) => void;
}

export type RelayStart = { kind: 'stream'; done: Promise<void> } | { kind: 'nothing-more' };

/**
 * Relays one job's events to one SSE response.
 *
 * Order of operations is what makes resume exact: subscribe to the live channel first
 * (buffering), then read the log after `afterSeq`, then emit log events, then buffered
 * live events, de-duplicated by `seq`. A live event that skips ahead (a message lost
 * while the subscriber reconnected) triggers a log read to fill the gap.
 */
export class EventRelay {
  constructor(
    private readonly subscriber: SharedSubscriber,
    private readonly log: EventLog,
    private readonly keys: RedisKeys,
    private readonly logger: Logger,
  ) {}

  async start(response: ServerResponse, options: RelayOptions): Promise<RelayStart> {
    const { jobId } = options;
    let lastSent = options.afterSeq;
    let ready = false;
    let finished = false;
    const buffered: StreamEvent[] = [];
    let chain: Promise<void> = Promise.resolve();

    let resolveDone!: () => void;
    const done = new Promise<void>((resolve) => (resolveDone = resolve));

    const write = (event: StreamEvent) => {
      if (finished || event.seq <= lastSent) return;
      lastSent = event.seq;
      options.onEvent?.(event);
      const { seq, ...body } = event;
      response.write(`id: ${seq}\nevent: ${event.type}\ndata: ${JSON.stringify({ seq, ...body })}\n\n`);
      if (isTerminalEvent(event)) finish();
    };

    const deliver = (event: StreamEvent) => {
      chain = chain.then(async () => {
        if (finished || event.seq <= lastSent) return;
        if (event.seq > lastSent + 1) {
          for (const missing of await this.log.readAfter(jobId, lastSent)) {
            if (missing.seq < event.seq) write(missing);
          }
        }
        write(event);
      }).catch((error) => {
        this.logger.warn({ err: error, jobId }, 'relay could not fill a gap; ending stream for the client to resume');
        finish();
      });
    };

    const unsubscribe = await this.subscriber.subscribe(this.keys.jobChannel(jobId), (message) => {
      const event = parseEventPayload(message);
      if (!event) return;
      if (ready) deliver(event);
      else buffered.push(event);
    });

    let heartbeat: NodeJS.Timeout | undefined;
    const onClose = () => finish();
    function finish() {
      if (finished) return;
      finished = true;
      if (heartbeat) clearInterval(heartbeat);
      response.off('close', onClose);
      void unsubscribe();
      if (!response.writableEnded) response.end();
      resolveDone();
    }

    let history: StreamEvent[];
    try {
      history = await this.log.readAfter(jobId, lastSent);
    } catch (error) {
      await unsubscribe();
      throw error;
    }
    if (history.length === 0 && buffered.length === 0) {
      const last = await this.log.last(jobId).catch(() => undefined);
      const ended = (last !== undefined && isTerminalEvent(last)) || (last === undefined && (await options.jobEnded()));
      if (ended) {
        await unsubscribe();
        return { kind: 'nothing-more' };
      }
    }

    response.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    response.flushHeaders();
    response.on('close', onClose);
    heartbeat = setInterval(() => {
      if (!finished) response.write(': keep-alive\n\n');
    }, options.heartbeatMs);
    heartbeat.unref();

    for (const event of history) write(event);
    ready = true;
    for (const event of buffered) deliver(event);
    buffered.length = 0;
    if (finished) return { kind: 'stream', done };
    return { kind: 'stream', done };
  }
}
