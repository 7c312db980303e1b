import { once } from 'node:events';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { RedisConnection } from '@switchyard/redis';
import { pino } from 'pino';
import { redisKeys, type RedisKeys, type StreamEvent, type StreamEventBody } from '@switchyard/protocol';
import { EventLog, ScriptedJobs, SharedSubscriber, closeRedis, createRedis, waitUntilReady, type RawEvent } from '@switchyard/redis';
import { testRedis, uniquePrefix } from '@switchyard/testing';
import { JobEventFeed, type FeedOptions } from './job-event-feed.js';

const silent = pino({ level: 'silent' });
const token = (text: string): StreamEventBody => ({ type: 'token', text });
const DONE: StreamEventBody = {
  type: 'done',
  finish_reason: 'stop',
  usage: { prompt_tokens: 1, completion_tokens: 3 },
  timings: { queued_ms: 0, load_ms: 0, ttft_ms: 1, total_ms: 2 },
};

/** What a feed delivered, and a promise of how it ended. */
function recorder() {
  const raw: RawEvent[] = [];
  const parsed: StreamEvent[] = [];
  let resolveEnd!: (reason: 'terminal' | 'closed' | 'error') => void;
  const ended = new Promise<'terminal' | 'closed' | 'error'>((resolve) => (resolveEnd = resolve));
  const options = (jobId: string, afterSeq = 0): FeedOptions => ({
    jobId,
    afterSeq,
    onRaw: (event) => raw.push(event),
    onEvent: (event) => parsed.push(event),
    onEnd: (reason) => resolveEnd(reason),
  });
  return { raw, parsed, ended, options, seqs: () => raw.map((event) => event.seq) };
}

describe('JobEventFeed on a real Redis', () => {
  let redis: RedisConnection;
  let subscriberConnection: RedisConnection;
  let keys: RedisKeys;
  let log: EventLog;
  let subscriber: SharedSubscriber;
  let feed: JobEventFeed;
  /**
   * Writes to the same log and seq counter but publishes on a channel nobody hears: the
   * messages a subscriber misses while it reconnects, as the feed would meet them.
   */
  let unheard: ScriptedJobs;
  let writer: ScriptedJobs;
  let jobCounter = 0;
  const newJob = () => `job${++jobCounter}`;
  /** Resolves once a message containing `text` reached this process's subscriber (the feed's too). */
  const heard = async (jobId: string, text: string) => {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    const off = await subscriber.subscribe(keys.jobChannel(jobId), (message) => message.includes(text) && resolve());
    return { heard: promise, off };
  };

  beforeAll(() => {
    redis = createRedis(testRedis(), 'worker');
    subscriberConnection = createRedis(testRedis(), 'worker');
    // Each test's SharedSubscriber adds its listeners to this one connection.
    subscriberConnection.setMaxListeners(50);
    keys = redisKeys(uniquePrefix('feed'));
    log = new EventLog(redis, keys);
    writer = new ScriptedJobs(redis, keys);
    // Writes whose live events nobody hears (a lost publish): the log has them, the channel does not.
    unheard = new ScriptedJobs(redis, { ...keys, jobChannel: (jobId) => `${keys.jobChannel(jobId)}:unheard` });
  });
  // One per test (channels are per job, so they do not meet on the shared connection): a
  // subscription a failed test leaves behind does not fail the next one's count.
  beforeEach(() => {
    subscriber = new SharedSubscriber(subscriberConnection);
    feed = new JobEventFeed(subscriber, log, keys, silent);
  });
  afterAll(async () => {
    await closeRedis(subscriberConnection);
    await closeRedis(redis);
  });

  it('replays the log, then tails live events in order, and ends (unsubscribed) at the terminal event', async () => {
    const jobId = newJob();
    await writer.append(jobId, { type: 'queued', position: 0, depth: 1 });
    await writer.append(jobId, { type: 'started', agent: 'a1', cold: false, load_ms: 0 });
    const seen = recorder();
    const open = await feed.open(seen.options(jobId));
    // Nothing before start(): the caller sends its headers first.
    expect(seen.raw).toEqual([]);
    open.start();
    expect(seen.seqs()).toEqual([1, 2]);

    await writer.append(jobId, token('Hel'));
    await writer.append(jobId, token('lo'));
    await writer.append(jobId, DONE);
    expect(await seen.ended).toBe('terminal');
    expect(seen.seqs()).toEqual([1, 2, 3, 4, 5]);
    expect(seen.parsed.map((event) => event.type)).toEqual(['queued', 'started', 'token', 'token', 'done']);
    expect(seen.parsed[2]).toEqual({ seq: 3, type: 'token', text: 'Hel' });
    // The raw payload is the stored JSON, as forwarded by the native SSE stream.
    expect(JSON.parse(seen.raw[3]!.payload)).toEqual({ seq: 4, type: 'token', text: 'lo' });
    await expect.poll(() => subscriber.channelCount).toBe(0);
  });

  it('resumes after a Last-Event-ID: only the events after it, each once', async () => {
    const jobId = newJob();
    for (const text of ['a', 'b', 'c', 'd']) await writer.append(jobId, token(text));
    const seen = recorder();
    const open = await feed.open(seen.options(jobId, 2));
    open.start();
    expect(seen.seqs()).toEqual([3, 4]);
    await writer.append(jobId, token('e'));
    await writer.append(jobId, DONE);
    expect(await seen.ended).toBe('terminal');
    expect(seen.seqs()).toEqual([3, 4, 5, 6]);
  });

  it('buffers live events that arrive between open() and start(), and drops the ones the replay already had', async () => {
    const jobId = newJob();
    await writer.append(jobId, token('a'));
    // An event written after the subscription and before the log read is both replayed and
    // heard live: the read waits until the live copy has reached the subscriber.
    const b = await heard(jobId, '"text":"b"');
    const racing = Object.create(log) as EventLog;
    let raced = false;
    racing.readRawAfter = async (id, after, count) => {
      if (!raced) {
        raced = true;
        await writer.append(jobId, token('b'));
        await b.heard;
      }
      return log.readRawAfter(id, after, count);
    };
    const seen = recorder();
    const open = await new JobEventFeed(subscriber, racing, keys, silent).open(seen.options(jobId));
    // Published while the feed is open but not started: held back, not lost. One connection
    // delivers in order, so once `d` is heard `c` was too.
    const d = await heard(jobId, '"text":"d"');
    await writer.append(jobId, token('c'));
    await writer.append(jobId, token('d'));
    await d.heard;
    await Promise.all([b.off(), d.off()]);
    open.start();
    expect(seen.seqs()).toEqual([1, 2, 3, 4]);
    await writer.append(jobId, DONE);
    expect(await seen.ended).toBe('terminal');
    expect(seen.seqs()).toEqual([1, 2, 3, 4, 5]);
  });

  it('fills a gap from the log when a live event skips ahead (messages lost while the subscriber reconnected)', async () => {
    const jobId = newJob();
    await writer.append(jobId, token('a'));
    const seen = recorder();
    const open = await feed.open(seen.options(jobId));
    open.start();
    expect(seen.seqs()).toEqual([1]);
    // seq 2 and 3 reach the log but never the channel.
    await unheard.append(jobId, token('b'));
    await unheard.append(jobId, token('c'));
    await writer.append(jobId, token('d'));
    await writer.append(jobId, token('e'));
    await writer.append(jobId, DONE);
    expect(await seen.ended).toBe('terminal');
    expect(seen.seqs()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(seen.parsed.flatMap((event) => (event.type === 'token' ? [event.text] : []))).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('ends with "error" when a gap cannot be read, so the client resumes', async () => {
    const jobId = newJob();
    const failing = Object.create(log) as EventLog;
    let reads = 0;
    failing.readRawAfter = async (id, after, count) => {
      // The first read is the replay; the second, the gap fill.
      if (++reads > 1) throw new Error('Redis went away');
      return log.readRawAfter(id, after, count);
    };
    await writer.append(jobId, token('a'));
    const seen = recorder();
    const open = await new JobEventFeed(subscriber, failing, keys, silent).open(seen.options(jobId));
    open.start();
    await unheard.append(jobId, token('b'));
    await writer.append(jobId, token('c'));
    expect(await seen.ended).toBe('error');
    expect(seen.seqs()).toEqual([1]);
    await expect.poll(() => subscriber.channelCount).toBe(0);
  });

  it('answers undefined (and holds no subscription) when there is nothing more to deliver', async () => {
    const finished = newJob();
    await writer.append(finished, token('a'));
    await writer.append(finished, DONE);
    // Resuming after the terminal event.
    expect(await feed.open(recorder().options(finished, 2), async () => false)).toBeUndefined();
    // An empty log whose job has ended (its log expired).
    const gone = newJob();
    expect(await feed.open(recorder().options(gone), async () => true)).toBeUndefined();
    expect(subscriber.channelCount).toBe(0);

    // An empty log of a job that has not ended (one adopted at its claim, whose first event is
    // its agent's `started`): its first event is on its way.
    const fresh = newJob();
    const seen = recorder();
    const open = await feed.open(seen.options(fresh), async () => false);
    expect(open).toBeDefined();
    open!.start();
    await writer.append(fresh, { type: 'started', agent: 'a1', cold: false, load_ms: 0 });
    await expect.poll(() => seen.seqs()).toEqual([1]);
    open!.close();
  });

  it('stops delivering on close(), once, and drops the subscription', async () => {
    const jobId = newJob();
    const seen = recorder();
    const ends: string[] = [];
    const open = await feed.open({ ...seen.options(jobId), onEnd: (reason) => ends.push(reason) });
    open.start();
    await writer.append(jobId, token('a'));
    await expect.poll(() => seen.seqs()).toEqual([1]);
    open.close();
    open.close();
    expect(ends).toEqual(['closed']);
    await expect.poll(() => subscriber.channelCount).toBe(0);
    // A later event reaches the log but not this consumer.
    await writer.append(jobId, token('b'));
    expect((await log.readRawAfter(jobId, 0)).length).toBe(2);
    expect(seen.seqs()).toEqual([1]);
    expect(ends).toEqual(['closed']);
  });

  describe('a subscriber that reconnects, or a feed that hears nothing', () => {
    /**
     * A subscriber connection the test can take away: after `drop()` it stays down (its
     * retry strategy gives up) until `reconnect()`, so every message published in between is
     * lost to it, as to the API's subscriber while Redis restarts.
     */
    async function droppableSubscriber() {
      let mayReconnect = true;
      const connection = createRedis(testRedis(), 'worker', { retryStrategy: () => (mayReconnect ? 10 : null) });
      connection.on('error', () => undefined); // the kill is reported as an error: expected here
      await waitUntilReady(connection);
      // Asked before it subscribes: a subscribed connection may not send CLIENT ID.
      const id = (await connection.client('ID')) as number;
      const shared = new SharedSubscriber(connection);
      const resubscribed = () => new Promise<void>((resolve) => shared.onResubscribed(resolve));
      return {
        connection,
        shared,
        resubscribed,
        async drop() {
          mayReconnect = false;
          const ended = once(connection, 'end');
          await redis.client('KILL', 'ID', String(id));
          await ended;
        },
        async reconnect() {
          mayReconnect = true;
          await connection.connect();
        },
      };
    }
    /** How many connections listen on a job's channel (0: a publish now reaches nobody). */
    const listeners = async (jobId: string) => ((await redis.pubsub('SHARDNUMSUB', keys.jobChannel(jobId))) as Array<string | number>)[1];

    it('re-reads the log once the subscriber is subscribed again: what was published while it was away, done included, arrives and the feed ends', async () => {
      const sub = await droppableSubscriber();
      try {
        const reconnecting = new JobEventFeed(sub.shared, log, keys, silent, { sweepTimer: false });
        const jobId = newJob();
        await writer.append(jobId, token('a'));
        const seen = recorder();
        const open = await reconnecting.open(seen.options(jobId));
        open.start();
        expect(seen.seqs()).toEqual([1]);

        await sub.drop();
        // Published while the subscriber is gone: heard by nobody, and the job's last events.
        expect(await listeners(jobId)).toBe(0);
        await writer.append(jobId, token('b'));
        await writer.append(jobId, token('c'));
        await writer.append(jobId, DONE);
        expect(seen.seqs()).toEqual([1]);

        await sub.reconnect();
        expect(await seen.ended).toBe('terminal');
        expect(seen.seqs()).toEqual([1, 2, 3, 4]);
        expect(seen.parsed.flatMap((event) => (event.type === 'token' ? [event.text] : []))).toEqual(['a', 'b', 'c']);
        await expect.poll(() => sub.shared.channelCount).toBe(0);
      } finally {
        await closeRedis(sub.connection);
      }
    });

    it('a feed opened but not started when the subscriber came back reads the log again at its start', async () => {
      const sub = await droppableSubscriber();
      try {
        const reconnecting = new JobEventFeed(sub.shared, log, keys, silent, { sweepTimer: false });
        const jobId = newJob();
        await writer.append(jobId, token('a'));
        const seen = recorder();
        const open = await reconnecting.open(seen.options(jobId));
        await sub.drop();
        await writer.append(jobId, token('b'));
        await writer.append(jobId, DONE);
        const back = sub.resubscribed();
        await sub.reconnect();
        await back;
        // The replay read in open() had only `a`; `b` and `done` reached nobody live.
        open.start();
        expect(await seen.ended).toBe('terminal');
        expect(seen.seqs()).toEqual([1, 2, 3]);
      } finally {
        await closeRedis(sub.connection);
      }
    });

    it('drops, after a reconnect, the channels whose last listener left while the connection was down', async () => {
      const sub = await droppableSubscriber();
      try {
        const jobId = newJob();
        const off = await sub.shared.subscribe(keys.jobChannel(jobId), () => undefined);
        const kept = newJob();
        const offKept = await sub.shared.subscribe(keys.jobChannel(kept), () => undefined);
        await sub.drop();
        await off();
        const back = sub.resubscribed();
        await sub.reconnect();
        await back;
        // ioredis resubscribed both; a stream that is gone must not count as watching its job.
        expect(await listeners(jobId)).toBe(0);
        expect(await listeners(kept)).toBe(1);
        await offKept();
      } finally {
        await closeRedis(sub.connection);
      }
    });

    it('re-reads the log of a feed that delivered nothing for stallMs, and ends it at the terminal event found there', async () => {
      let now = 1_000_000;
      const stalling = new JobEventFeed(subscriber, log, keys, silent, { stallMs: 30_000, now: () => now, sweepTimer: false });
      const jobId = newJob();
      await writer.append(jobId, token('a'));
      const seen = recorder();
      const open = await stalling.open(seen.options(jobId));
      open.start();
      expect(seen.seqs()).toEqual([1]);
      // A live event 20 s in: the feed is not quiet from its start any more.
      now += 20_000;
      await writer.append(jobId, token('b'));
      await expect.poll(() => seen.seqs()).toEqual([1, 2]);
      await stalling.sweepStalled();

      // The job's end reaches the log but not the channel (lost publishes), and no later event comes.
      await unheard.append(jobId, token('c'));
      await unheard.append(jobId, DONE);
      now += 29_999;
      await stalling.sweepStalled();
      expect(seen.seqs()).toEqual([1, 2]);
      now += 1;
      await stalling.sweepStalled();
      expect(await seen.ended).toBe('terminal');
      expect(seen.seqs()).toEqual([1, 2, 3, 4]);
      await expect.poll(() => subscriber.channelCount).toBe(0);
    });

    it('a stalled feed whose log is gone ends when its job has ended, and stays open while it has not', async () => {
      let now = 0;
      let jobOver = false;
      const stalling = new JobEventFeed(subscriber, log, keys, silent, { stallMs: 1_000, now: () => now, sweepTimer: false });
      const jobId = newJob();
      await writer.append(jobId, token('a'));
      const seen = recorder();
      const open = await stalling.open(seen.options(jobId), async () => jobOver);
      open!.start();
      // The log expired (a stream open for longer than a finished job's log lives).
      await redis.del(keys.jobEvents(jobId));
      now += 1_000;
      await stalling.sweepStalled();
      expect(subscriber.channelCount).toBe(1);
      jobOver = true;
      now += 1_000;
      await stalling.sweepStalled();
      expect(await seen.ended).toBe('terminal');
      expect(seen.seqs()).toEqual([1]);
    });

    it('runs the stall sweep on its own timer', async () => {
      const stalling = new JobEventFeed(subscriber, log, keys, silent, { stallMs: 20 });
      const jobId = newJob();
      await writer.append(jobId, token('a'));
      const seen = recorder();
      (await stalling.open(seen.options(jobId))).start();
      // Only a re-read can deliver these: nothing is published.
      await unheard.append(jobId, DONE);
      expect(await seen.ended).toBe('terminal');
      expect(seen.seqs()).toEqual([1, 2]);
    });

    it('keeps a feed open when a re-read fails, and reads again shortly', async () => {
      let now = 0;
      const flaky = Object.create(log) as EventLog;
      let reads = 0;
      flaky.readRawAfter = async (id, after, count) => {
        // The first read is the replay; the second, the stall's re-read: RedisConnection not back yet.
        if (++reads === 2) throw new Error('Redis went away');
        return log.readRawAfter(id, after, count);
      };
      const stalling = new JobEventFeed(subscriber, flaky, keys, silent, { stallMs: 1_000, now: () => now, sweepTimer: false });
      const jobId = newJob();
      await writer.append(jobId, token('a'));
      const seen = recorder();
      (await stalling.open(seen.options(jobId))).start();
      await unheard.append(jobId, DONE);
      now += 1_000;
      await stalling.sweepStalled();
      expect(reads).toBe(2);
      expect(seen.seqs()).toEqual([1]);
      // The retry, not another stall (the clock stands still), delivers the end.
      expect(await seen.ended).toBe('terminal');
      expect(seen.seqs()).toEqual([1, 2]);
    });
  });
});
