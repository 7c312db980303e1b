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
  /**
   * Called once when the feed ends: after a terminal event (`terminal`; also when a stalled
   * feed finds its job ended with no log left to say so), on `close()`, or on a failure.
   */
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

/** When a feed reads its job's log again on its own (see `JobEventFeed`). */
export interface FeedStallOptions {
  /** A started feed that delivered nothing for this long re-reads its job's log. Default 30 000. */
  stallMs?: number;
  /** The stall sweep's clock (tests). */
  now?: () => number;
  /** False: no timer runs the stall sweep, the caller runs `sweepStalled()` (tests). Default true. */
  sweepTimer?: boolean;
}

/** An open feed as the stall sweep sees it. */
interface StallWatch {
  /** The last `seq` delivered: no change between two sweeps is no progress. */
  progress(): number;
  seen: number;
  quietSince: number;
  reread(): Promise<void>;
}

/** A catch-up read that failed (Redis back for the subscriber, not yet for reads) is retried this often, then left to the stall sweep. */
const CATCH_UP_RETRIES = 5;

/**
 * A job's events as one ordered, gap-free, duplicate-free sequence: the replay log after a
 * given `seq`, then the live tail.
 *
 * Order of operations is what makes resume exact: subscribe to the live channel first
 * (buffering), then read the log after `afterSeq`, then deliver log events, then buffered
 * live events, de-duplicated by `seq`. A live event that skips ahead (a message lost while
 * the subscriber reconnected) triggers a log read to fill the gap. Every consumer (SSE,
 * the OpenAI and Ollama wire formats) formats what this delivers.
 *
 * A gap shows only when a later event arrives, and a job may have none: a chaos run saw
 * jobs end while the subscriber was reconnecting after a Redis restart, their `done`
 * published to nobody, and their streams hang on heartbeats. So a feed also reads its log
 * after the last `seq` it delivered when the subscriber is subscribed again (after Redis
 * confirmed it, so nothing falls between the read and the live tail), and when it has
 * delivered nothing for `stallMs`: whatever went missing, a terminal event included, is
 * delivered and the feed ends there.
 */
export class JobEventFeed {
  private readonly stallMs: number;
  private readonly now: () => number;
  private readonly sweepTimer: boolean;
  private readonly watched = new Set<StallWatch>();
  private sweeping: NodeJS.Timeout | undefined;

  constructor(
    private readonly subscriber: SharedSubscriber,
    private readonly log: EventLog,
    private readonly keys: RedisKeys,
    private readonly logger: Logger,
    stall: FeedStallOptions = {},
  ) {
    this.stallMs = stall.stallMs ?? 30_000;
    this.now = stall.now ?? Date.now;
    this.sweepTimer = stall.sweepTimer ?? true;
  }

  /**
   * Re-reads the log of every started feed that delivered nothing for `stallMs` (by the
   * sweeps' count: a feed counts as quiet from the first sweep that saw it make no
   * progress, so never before `stallMs` after its last event). Resolves when those reads are
   * done. A timer runs it every quarter of `stallMs` while feeds are open.
   */
  async sweepStalled(): Promise<void> {
    const now = this.now();
    const rereads: Array<Promise<void>> = [];
    for (const watch of this.watched) {
      const progress = watch.progress();
      if (progress !== watch.seen) {
        watch.seen = progress;
        watch.quietSince = now;
      } else if (now - watch.quietSince >= this.stallMs) {
        watch.quietSince = now;
        rereads.push(watch.reread());
      }
    }
    await Promise.all(rereads);
  }

  private watch(watch: StallWatch): void {
    this.watched.add(watch);
    if (this.sweepTimer && !this.sweeping) {
      this.sweeping = setInterval(() => void this.sweepStalled(), Math.max(1, this.stallMs / 4));
      this.sweeping.unref();
    }
  }

  private unwatch(watch: StallWatch): void {
    this.watched.delete(watch);
    if (this.watched.size === 0 && this.sweeping) {
      clearInterval(this.sweeping);
      this.sweeping = undefined;
    }
  }

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
    // Log reads are the only asynchronous step; while one runs, later live events queue
    // behind it in `pending`, and `draining` is the loop that delivers them.
    let pending: RawEvent[] | undefined;
    let draining: Promise<void> | undefined;
    // A catch-up read wanted (of everything after `lastDelivered`), and why.
    let reread: 'resubscribed' | 'stalled' | undefined;
    let retryTimer: NodeJS.Timeout | undefined;
    let retries = 0;
    let unsubscribe: (() => Promise<void>) | undefined;

    const end = (reason: 'terminal' | 'closed' | 'error') => {
      if (closed) return;
      closed = true;
      offResubscribed();
      this.unwatch(watch);
      if (retryTimer) clearTimeout(retryTimer);
      void unsubscribe?.();
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
    // Everything after `lastDelivered` from the log. A failed read does not end the feed (the
    // subscriber may be back before the connection reads go through): it is tried again soon,
    // and after that on the next stall.
    const catchUp = async (why: 'resubscribed' | 'stalled') => {
      let events: RawEvent[];
      try {
        events = await this.log.readRawAfter(jobId, lastDelivered);
      } catch (error) {
        if (retries < CATCH_UP_RETRIES && !closed && !retryTimer) {
          const delayMs = 100 * 2 ** retries++;
          this.logger.debug({ err: error, jobId, why, delayMs }, 'could not re-read a job feed; trying again');
          retryTimer = setTimeout(() => {
            retryTimer = undefined;
            void requestReread(why);
          }, delayMs);
          retryTimer.unref();
        }
        return;
      }
      retries = 0;
      for (const event of events) deliverNow(event);
      if (why === 'stalled' && events.length === 0 && jobEnded && !closed) {
        // Asked only when the log itself is gone (expired): a job that ended has its
        // terminal event there otherwise, and it was just delivered.
        const ended = await this.log
          .last(jobId)
          .then((last) => last === undefined && jobEnded())
          .catch(() => false);
        if (ended) end('terminal');
      }
    };
    const drain = async () => {
      try {
        while (!closed) {
          if (reread) {
            const why = reread;
            reread = undefined;
            await catchUp(why);
            continue;
          }
          const next = pending?.[0];
          if (!next) break;
          // A live event that skips ahead means messages were lost (the subscriber
          // reconnected): read them from the log, then go on.
          if (next.seq > lastDelivered + 1) {
            for (const missing of await this.log.readRawAfter(jobId, lastDelivered)) {
              if (missing.seq < next.seq) deliverNow(missing);
            }
          }
          pending!.shift();
          deliverNow(next);
        }
      } catch (error) {
        this.logger.warn({ err: error, jobId }, 'could not fill a gap in a job feed; ending it so the client resumes');
        end('error');
      } finally {
        pending = undefined;
        draining = undefined;
      }
    };
    const requestReread = (why: 'resubscribed' | 'stalled'): Promise<void> => {
      if (closed) return Promise.resolve();
      // A stall's read also asks whether the job ended; keep it when both are wanted.
      if (reread !== 'stalled') reread = why;
      // Before start() the read waits for it (start delivers the replay first).
      if (replaying) return Promise.resolve();
      if (!draining) {
        pending = [];
        draining = drain();
      }
      return draining;
    };
    const deliverLive = (event: RawEvent) => {
      if (closed || event.seq <= lastDelivered) return;
      if (pending) {
        pending.push(event);
        return;
      }
      // The common case: the next event, delivered synchronously.
      if (event.seq === lastDelivered + 1) deliverNow(event);
      else {
        pending = [event];
        draining = drain();
      }
    };
    const watch: StallWatch = { progress: () => lastDelivered, seen: lastDelivered, quietSince: 0, reread: () => requestReread('stalled') };

    // Before the subscription: a reconnect while it is being made is a reason to read again.
    const offResubscribed = this.subscriber.onResubscribed(() => void requestReread('resubscribed'));
    let history: RawEvent[];
    try {
      unsubscribe = await this.subscriber.subscribe(this.keys.jobChannel(jobId), (message) => {
        const event = rawEvent(message);
        if (!event) return;
        if (replaying) buffered.push(event);
        else deliverLive(event);
      });
      history = await this.log.readRawAfter(jobId, lastDelivered);
      if (history.length === 0 && buffered.length === 0) {
        const last = await this.log.last(jobId);
        const ended = last !== undefined ? isTerminalEvent(last) : ((await jobEnded?.()) ?? false);
        if (ended) {
          offResubscribed();
          await unsubscribe();
          return undefined;
        }
      }
    } catch (error) {
      offResubscribed();
      await unsubscribe?.();
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
        if (closed) return;
        watch.seen = lastDelivered;
        watch.quietSince = this.now();
        this.watch(watch);
        if (reread) void requestReread(reread);
      },
      close: () => end('closed'),
    };
  }
}
