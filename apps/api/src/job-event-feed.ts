import type { Logger } from 'pino';
import { isTerminalEvent, type RedisKeys, type StreamEvent } from '@switchyard/protocol';
import { parseEventPayload, type EventLog, type SharedSubscriber } from '@switchyard/redis';

export interface FeedOptions {
  jobId: string;
  /** Last `seq` the consumer already has; 0 for everything. */
  afterSeq: number;
  /** Called in `seq` order, exactly once per event after `afterSeq`. */
  onEvent: (event: StreamEvent) => void;
  /** Called once when the feed ends: after a terminal event, on `close()`, or on a failure. */
  onEnd?: (reason: 'terminal' | 'closed' | 'error') => void;
}

export interface OpenFeed {
  /**
   * Starts delivery: the replayed events, then the live tail. Separate from `open` so the
   * caller can send its response headers first.
   */
  start(): void;
  /** Stops delivering and drops the subscription. Idempotent. */
  close(): void;
}

/**
 * A job's events as one ordered, gap-free, duplicate-free sequence: the replay log after a
 * given `seq`, then the live tail.
 *
 * Order of operations is what makes resume exact: subscribe to the live channel first
 * (buffering), then read the log after `afterSeq`, then deliver log events, then buffered
 * live events, de-duplicated by `seq`. A live event that skips ahead (a message lost while
 * the subscriber reconnected) triggers a log read to fill the gap. Every consumer (SSE,
 * the OpenAI and Ollama wire formats) formats what this delivers.
 */
export class JobEventFeed {
  constructor(
    private readonly subscriber: SharedSubscriber,
    private readonly log: EventLog,
    private readonly keys: RedisKeys,
    private readonly logger: Logger,
  ) {}

  /**
   * Opens the feed. Resolves `undefined` when there is nothing more to deliver: the log
   * after `afterSeq` is empty and the job has ended (`jobEnded` decides when the log itself
   * is gone). Otherwise nothing is delivered until `start()`; live events are buffered.
   */
  async open(options: FeedOptions, jobEnded: () => Promise<boolean>): Promise<OpenFeed | undefined> {
    const { jobId } = options;
    let lastDelivered = options.afterSeq;
    let replaying = true;
    let closed = false;
    const buffered: StreamEvent[] = [];
    let chain: Promise<void> = Promise.resolve();

    const end = (reason: 'terminal' | 'closed' | 'error') => {
      if (closed) return;
      closed = true;
      void unsubscribe();
      options.onEnd?.(reason);
    };
    const deliverNow = (event: StreamEvent) => {
      if (closed || event.seq <= lastDelivered) return;
      lastDelivered = event.seq;
      options.onEvent(event);
      if (isTerminalEvent(event)) end('terminal');
    };
    const deliverLive = (event: StreamEvent) => {
      chain = chain
        .then(async () => {
          if (closed || event.seq <= lastDelivered) return;
          if (event.seq > lastDelivered + 1) {
            for (const missing of await this.log.readAfter(jobId, lastDelivered)) {
              if (missing.seq < event.seq) deliverNow(missing);
            }
          }
          deliverNow(event);
        })
        .catch((error) => {
          this.logger.warn({ err: error, jobId }, 'could not fill a gap in a job feed; ending it so the client resumes');
          end('error');
        });
    };

    const unsubscribe = await this.subscriber.subscribe(this.keys.jobChannel(jobId), (message) => {
      const event = parseEventPayload(message);
      if (!event) return;
      if (replaying) buffered.push(event);
      else deliverLive(event);
    });

    let history: StreamEvent[];
    try {
      history = await this.log.readAfter(jobId, lastDelivered);
      if (history.length === 0 && buffered.length === 0) {
        const last = await this.log.last(jobId);
        const ended = last !== undefined ? isTerminalEvent(last) : await jobEnded();
        if (ended) {
          await unsubscribe();
          return undefined;
        }
      }
    } catch (error) {
      await unsubscribe();
      throw error;
    }

    let started = false;
    return {
      start: () => {
        if (started || closed) return;
        started = true;
        for (const event of history) deliverNow(event);
        replaying = false;
        for (const event of buffered) deliverLive(event);
        buffered.length = 0;
      },
      close: () => end('closed'),
    };
  }
}
