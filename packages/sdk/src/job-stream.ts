import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { StreamEvent, isTerminalEvent } from '@switchyard/protocol';
import { ClientErrorCode, SwitchyardError, abortReason, errorFromResponse } from './errors.js';
import { RetryBudget, type Http, type RetryOptions } from './http.js';
import { backoffMs, linkedController, sleep } from './timing.js';

/** How a dropped event stream is re-established. */
export interface ReconnectOptions {
  /** Consecutive failed (re)connections, without an event in between, before giving up. Default 8. */
  maxAttempts?: number;
  /** First delay before reconnecting; doubles per failed attempt. Default 250 ms. */
  initialDelayMs?: number;
  /** Largest delay between attempts. Default 5 000 ms. */
  maxDelayMs?: number;
  /**
   * A connection that brings nothing for this long, not an event and not the API's heartbeat
   * comment (sent every 15 s by default, `SSE_HEARTBEAT_MS`), is taken for dead and replaced
   * (reconnect with `Last-Event-ID`). Default 45 000 ms (three heartbeats); 0 turns it off.
   */
  stallTimeoutMs?: number;
}

/** Why and when a stream reconnects (see {@link StreamOptions.onReconnect}). */
export interface ReconnectInfo {
  /** 1 for the first reconnect after an event arrived, 2 for the next failure, … */
  attempt: number;
  /** The `seq` the stream resumes after (sent as `Last-Event-ID`). */
  lastEventId: number;
  /** What ended the previous connection, when it was an error. */
  error?: unknown;
  /** Milliseconds until the reconnect. */
  delayMs: number;
}

export interface StreamOptions {
  /** Aborts the stream: the iteration throws the signal's reason. The job keeps running; use `cancel()` to stop it. */
  signal?: AbortSignal;
  /** Resume after this `seq` (a `Last-Event-ID` saved from an earlier stream). */
  lastEventId?: number | string;
  /** Called before each reconnect. */
  onReconnect?: (info: ReconnectInfo) => void;
}

/** A job's events, as returned by `SwitchyardClient.stream()`. */
export interface JobEventStream extends AsyncIterable<StreamEvent> {
  /** The job whose events these are. */
  readonly jobId: string;
  /** `seq` of the last event delivered (0 before the first): save it to resume later. */
  readonly lastEventId: number;
  /** How many times the stream reconnected so far. */
  readonly reconnects: number;
}

export interface StreamDeps {
  http: Http;
  retry: RetryOptions;
  reconnect: ReconnectOptions;
}

/** Thrown inside the read loop to reconnect after a gap (an event that skipped a `seq`). */
class GapDetected extends Error {}

/** Why a connection that went silent was replaced (the `error` of its {@link ReconnectInfo}). */
class StreamStalled extends Error {
  override readonly name = 'StreamStalled';
}

/**
 * Calls `onStall` once nothing was `touch`ed for `ms` while the stream was being read (the time
 * the caller spends on an event between `pause` and `resume` is not silence). One timer per
 * connection, re-armed only when it fires early: a touch per chunk is a clock read, not a timer.
 */
function stallWatch(ms: number, onStall: () => void): { touch(): void; pause(): void; resume(): void; stop(): void } {
  const off = () => undefined;
  if (ms <= 0) return { touch: off, pause: off, resume: off, stop: off };
  let last = Date.now();
  let paused = false;
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = (delay: number) => {
    timer = setTimeout(() => {
      timer = undefined;
      // Paused: `resume` arms it again (no timer runs for a consumer that walked away).
      if (paused) return;
      const quiet = Date.now() - last;
      if (quiet >= ms) onStall();
      else arm(ms - quiet);
    }, delay);
  };
  arm(ms);
  return {
    touch: () => void (last = Date.now()),
    pause: () => void (paused = true),
    resume: () => {
      paused = false;
      last = Date.now();
      if (!timer && !stopped) arm(ms);
    },
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}

/**
 * Creates the event stream of one job. Connection by connection:
 *
 * - `GET /v1/jobs/:id/events` with `Last-Event-ID` set to the last `seq` delivered, so the
 *   server replays exactly what is missing: no gap, no duplicate (and any duplicate or gap
 *   that still arrived is dropped or refilled by reconnecting).
 * - `204` means everything was delivered: the iteration ends.
 * - A terminal event (`done`, `error`) ends the iteration after it is yielded.
 * - A dropped connection, or a response that ends early, reconnects with backoff; the
 *   attempt counter resets whenever an event arrives.
 * - So does a connection that stays silent (no event, no heartbeat) for `stallTimeoutMs`: a
 *   dead TCP connection that was never closed would otherwise be read forever.
 * - `429`/`503` refusals are retried after `Retry-After` within the retry budget.
 */
export function createJobEventStream(deps: StreamDeps, jobId: string, options: StreamOptions = {}): JobEventStream {
  const initial = Number(options.lastEventId ?? 0);
  if (!Number.isInteger(initial) || initial < 0) throw new TypeError(`lastEventId must be a non-negative integer, got ${String(options.lastEventId)}`);
  const state = { lastEventId: initial, reconnects: 0 };
  return {
    jobId,
    get lastEventId() {
      return state.lastEventId;
    },
    get reconnects() {
      return state.reconnects;
    },
    [Symbol.asyncIterator]: () => readEvents(deps, jobId, options, state),
  };
}

async function* readEvents(deps: StreamDeps, jobId: string, options: StreamOptions, state: { lastEventId: number; reconnects: number }): AsyncGenerator<StreamEvent> {
  const { http } = deps;
  const maxAttempts = deps.reconnect.maxAttempts ?? 8;
  const initialDelayMs = deps.reconnect.initialDelayMs ?? 250;
  const maxDelayMs = deps.reconnect.maxDelayMs ?? 5_000;
  const stallTimeoutMs = deps.reconnect.stallTimeoutMs ?? 45_000;
  const budget = new RetryBudget(deps.retry);
  const path = `/v1/jobs/${encodeURIComponent(jobId)}/events`;
  let failures = 0;
  let serverRetryMs: number | undefined;

  const reconnect = async (error: unknown) => {
    failures++;
    if (failures > maxAttempts) {
      throw new SwitchyardError(ClientErrorCode.connectionFailed, `the event stream of job ${jobId} dropped ${failures} times in a row without progress`, {
        jobId,
        cause: error,
      });
    }
    const delayMs = failures === 1 && serverRetryMs === undefined ? 0 : backoffMs(failures, serverRetryMs ?? initialDelayMs, maxDelayMs);
    state.reconnects++;
    options.onReconnect?.({ attempt: failures, lastEventId: state.lastEventId, ...(error !== undefined && { error }), delayMs });
    await sleep(delayMs, options.signal);
  };

  for (;;) {
    if (options.signal?.aborted) throw abortReason(options.signal);
    const { controller, release } = linkedController(options.signal);
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    let stalled: StreamStalled | undefined;
    // From the request on: an answer whose headers never come is as dead as a silent body.
    const watch = stallWatch(stallTimeoutMs, () => {
      stalled = new StreamStalled(`the event stream of job ${jobId} brought nothing (no event, no heartbeat) for ${stallTimeoutMs} ms`);
      // Cancelling the reader ends a read that waits (a fetch need not honour the abort).
      reader?.cancel(stalled).catch(() => undefined);
      controller.abort(stalled);
    });
    try {
      let response: Response;
      try {
        response = await http.fetchOnce('GET', path, {
          signal: controller.signal,
          headers: { Accept: 'text/event-stream', ...(state.lastEventId > 0 && { 'Last-Event-ID': String(state.lastEventId) }) },
        });
      } catch (error) {
        if (options.signal?.aborted) throw abortReason(options.signal);
        watch.stop();
        await reconnect(stalled ?? error);
        continue;
      }
      if (response.status === 204) return;
      if (!response.ok) {
        watch.stop();
        const error = await errorFromResponse(response);
        const delay = budget.delayFor(error);
        if (delay === undefined) throw error;
        await sleep(delay, options.signal);
        continue;
      }
      const type = response.headers.get('content-type') ?? '';
      if (!type.startsWith('text/event-stream') || !response.body) {
        throw new SwitchyardError(ClientErrorCode.invalidResponse, `the event stream of job ${jobId} answered with ${JSON.stringify(type)}, not text/event-stream`, {
          status: response.status,
          jobId,
        });
      }

      const messages: EventSourceMessage[] = [];
      const parser = createParser({
        onEvent: (message) => messages.push(message),
        onRetry: (ms) => (serverRetryMs = ms),
      });
      reader = response.body.getReader();
      const decoder = new TextDecoder();
      let dropped: unknown;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          watch.touch();
          parser.feed(decoder.decode(value, { stream: true }));
          while (messages.length > 0) {
            const event = parseEvent(messages.shift()!, jobId);
            if (event.seq <= state.lastEventId) continue; // already delivered
            if (event.seq !== state.lastEventId + 1) throw new GapDetected(`expected seq ${state.lastEventId + 1}, got ${event.seq}`);
            state.lastEventId = event.seq;
            failures = 0;
            watch.pause();
            yield event;
            watch.resume();
            if (isTerminalEvent(event)) return;
          }
        }
      } catch (error) {
        if (options.signal?.aborted) throw abortReason(options.signal);
        if (error instanceof SwitchyardError) throw error;
        dropped = error; // the connection broke (or a gap): resume from the last seq
      } finally {
        watch.stop();
        reader.cancel().catch(() => undefined);
      }
      await reconnect(stalled ?? dropped);
    } finally {
      watch.stop();
      controller.abort();
      release();
    }
  }
}

function parseEvent(message: EventSourceMessage, jobId: string): StreamEvent {
  let data: unknown;
  try {
    data = JSON.parse(message.data);
  } catch (error) {
    throw new SwitchyardError(ClientErrorCode.invalidResponse, `job ${jobId} sent an event that is not JSON`, { jobId, cause: error });
  }
  const parsed = StreamEvent.safeParse(data);
  if (!parsed.success) {
    throw new SwitchyardError(
      ClientErrorCode.invalidResponse,
      `job ${jobId} sent an invalid event: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || '(event)'}: ${issue.message}`).join('; ')}`,
      { jobId },
    );
  }
  return parsed.data as StreamEvent;
}
