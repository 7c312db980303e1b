import type { Logger } from 'pino';
import { isTerminalEvent, type RedisKeys, type StreamEvent } from '@switchyard/protocol';
import { parseEventPayload, rawEvent, type EventLog, type RawEvent, type SharedSubscriber } from '@switchyard/redis';

export interface FeedOptions {
  jobId: string;
  /** Last `seq` the consumer already has; 0 for everything. */
  afterSeq: number;
  /** Called in `seq` order, exactly once per event after `afterSeq`, with the parsed event. */
  onEvent?: (event: StreamEvent) => void;
  /**
   * The same, with the payload as stored (`{"seq":…,"type":…,…}` JSON) and nothing parsed:
   * for consumers that forward it as is (the native SSE stream).
   */
  onRaw?: (event: RawEvent) => void;
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
   * Without `jobEnded` an empty log means the first event is on its way (the caller has just
   * submitted the job), so the feed always opens.
   */
  async open(options: FeedOptions): Promise<OpenFeed>;
  async open(options: FeedOptions, jobEnded: () => Promise<boolean>): Promise<OpenFeed | undefined>;
  async open(options: FeedOptions, jobEnded?: () => Promise<boolean>): Promise<OpenFeed | undefined> {
    const { jobId } = options;
    let lastDelivered = options.afterSeq;
    let replaying = true;
    let closed = false;
    const buffered: RawEvent[] = [];
    // Gap fills are the only asynchronous step; while one runs, later events queue behind it.
    let pending: RawEvent[] | undefined;

    const end = (reason: 'terminal' | 'closed' | 'error') => {
      if (closed) return;
      closed = true;
      void unsubscribe();
      options.onEnd?.(reason);
    };
    const deliverNow = (event: RawEvent) => {
      if (closed || event.seq <= lastDelivered) return;
      lastDelivered = event.seq;
      options.onRaw?.(event);
      if (options.onEvent) {
        const parsed = parseEventPayload(event.payload);
        if (parsed) options.onEvent(parsed);
      }
      if (isTerminalEvent(event)) end('terminal');
    };
    // A live event that skips ahead means messages were lost (the subscriber reconnected):
    // read them from the log, then go on; events arriving meanwhile wait in `pending`.
    const fillGaps = async (event: RawEvent) => {
      pending = [event];
      try {
        while (pending.length > 0 && !closed) {
          const next = pending[0]!;
          if (next.seq > lastDelivered + 1) {
            for (const missing of await this.log.readRawAfter(jobId, lastDelivered)) {
              if (missing.seq < next.seq) deliverNow(missing);
            }
          }
          pending.shift();
          deliverNow(next);
        }
      } catch (error) {
        this.logger.warn({ err: error, jobId }, 'could not fill a gap in a job feed; ending it so the client resumes');
        end('error');
      } finally {
        pending = undefined;
      }
    };
    const deliverLive = (event: RawEvent) => {
      if (closed || event.seq <= lastDelivered) return;
      if (pending) {
        pending.push(event);
        return;
      }
      // The common case: the next event, delivered synchronously.
      if (event.seq === lastDelivered + 1) deliverNow(event);
      else void fillGaps(event);
    };

    const unsubscribe = await this.subscriber.subscribe(this.keys.jobChannel(jobId), (message) => {
      const event = rawEvent(message);
      if (!event) return;
      if (replaying) buffered.push(event);
      else deliverLive(event);
    });

    let history: RawEvent[];
    try {
      history = await this.log.readRawAfter(jobId, lastDelivered);
      if (history.length === 0 && buffered.length === 0) {
        const last = await this.log.last(jobId);
        const ended = last !== undefined ? isTerminalEvent(last) : ((await jobEnded?.()) ?? false);
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
