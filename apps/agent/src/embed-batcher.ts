/**
 * Combines concurrent embed requests for one model into one backend call, and splits the
 * vectors back. One lane per (model, truncate, dimensions, options, keep_alive): requests
 * that differ in any of these cannot share an `/api/embed` call.
 *
 * A lane with no call in flight sends an arrival at once (after `windowMs`, 0 by default: a
 * lone request waits for nothing). While a call is in flight, arrivals gather and go
 * together when it returns, up to `maxInputs` inputs per call (a request is never split; one
 * larger than `maxInputs` goes alone). The backend does one embed call at a time per model
 * anyway, so the wait costs nothing and the next call carries everything that queued.
 *
 * A failed call fails every request in it, except a refusal of the input (a 4xx other than
 * a missing model: an input too long with `truncate: false`, say) of a call carrying several
 * requests: those go again one by one, so one bad input does not fail the jobs beside it.
 */
import { BackendError, type EmbedRequest, type EmbedResponse } from '@switchyard/backends';

export interface EmbedBatcherOptions {
  /** Most inputs in one backend call (default 64). */
  maxInputs?: number;
  /** How long an arrival at an idle lane waits for company before its call goes (default 0). */
  windowMs?: number;
}

export interface EmbedPart extends EmbedResponse {
  /** Inputs in the backend call this request rode in (its own included). */
  batch_inputs: number;
}

export interface EmbedCallOptions {
  /** Aborting rejects this request at once; its call is aborted only when every request in it is. */
  signal?: AbortSignal;
  /** Called when the backend call carrying this request begins. */
  onStart?: () => void;
}

interface Entry {
  input: string[];
  resolve: (part: EmbedPart) => void;
  reject: (error: unknown) => void;
  options: EmbedCallOptions;
  settled: boolean;
  detach: () => void;
  /** Sent alone (after a batch it rode in was refused for its input). */
  solo?: boolean;
  started?: boolean;
}

interface Lane {
  request: Omit<EmbedRequest, 'input'>;
  pending: Entry[];
  inFlight: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
}

type EmbedFn = (request: EmbedRequest, signal?: AbortSignal) => Promise<EmbedResponse>;

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new DOMException(reason === undefined ? 'This operation was aborted' : `This operation was aborted: ${String(reason)}`, 'AbortError');
}

/** JSON with object keys sorted, so equal options make equal lane keys. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Shares `total` tokens among requests in proportion to their characters (the backend counts
 * a call's tokens, not each input's); largest remainders round, so the parts sum to `total`.
 */
export function shareTokens(total: number, weights: number[]): number[] {
  if (weights.length === 1) return [total];
  const sum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (sum === 0 ? total / weights.length : (total * w) / sum));
  const shares = exact.map(Math.floor);
  let left = total - shares.reduce((a, b) => a + b, 0);
  const order = exact.map((value, index) => ({ index, rest: value - Math.floor(value) })).sort((a, b) => b.rest - a.rest);
  for (const { index } of order) {
    if (left <= 0) break;
    shares[index]! += 1;
    left -= 1;
  }
  return shares;
}

/** The backend refused the call for what it carried (4xx), not for its model or its own trouble. */
function refusedInput(error: unknown): boolean {
  return (
    error instanceof BackendError &&
    error.status !== undefined &&
    error.status >= 400 &&
    error.status < 500 &&
    error.code !== 'model_not_found' &&
    !/does not support/i.test(error.message)
  );
}

export class EmbedBatcher {
  readonly #embed: EmbedFn;
  readonly #maxInputs: number;
  readonly #windowMs: number;
  readonly #lanes = new Map<string, Lane>();

  constructor(backend: { embed: EmbedFn }, options: EmbedBatcherOptions = {}) {
    this.#embed = (request, signal) => backend.embed(request, signal);
    this.#maxInputs = Math.max(1, options.maxInputs ?? 64);
    this.#windowMs = Math.max(0, options.windowMs ?? 0);
  }

  /** Backend calls in flight or requests waiting, by lane (for tests and metrics). */
  get lanes(): number {
    return this.#lanes.size;
  }

  embed(request: EmbedRequest, options: EmbedCallOptions = {}): Promise<EmbedPart> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(abortError(signal));
    const { input, ...shared } = request;
    const key = stableJson([shared.model, shared.truncate, shared.dimensions, shared.options, shared.keep_alive]);
    let lane = this.#lanes.get(key);
    if (lane === undefined) {
      lane = { request: shared, pending: [], inFlight: false, timer: undefined };
      this.#lanes.set(key, lane);
    }
    const target = lane;
    return new Promise<EmbedPart>((resolve, reject) => {
      const entry: Entry = { input, resolve, reject, options, settled: false, detach: () => undefined };
      if (signal !== undefined) {
        const onAbort = () => this.#abandon(key, target, entry, abortError(signal));
        signal.addEventListener('abort', onAbort, { once: true });
        entry.detach = () => signal.removeEventListener('abort', onAbort);
      }
      target.pending.push(entry);
      this.#schedule(key, target);
    });
  }

  #schedule(key: string, lane: Lane): void {
    if (lane.inFlight || lane.timer !== undefined || lane.pending.length === 0) return;
    if (this.#windowMs === 0) {
      this.#dispatch(key, lane);
      return;
    }
    lane.timer = setTimeout(() => {
      lane.timer = undefined;
      this.#dispatch(key, lane);
    }, this.#windowMs);
  }

  /** A request whose signal fired: out of its lane if it still waits, rejected either way. */
  #abandon(key: string, lane: Lane, entry: Entry, error: Error): void {
    const waiting = lane.pending.indexOf(entry);
    if (waiting >= 0) lane.pending.splice(waiting, 1);
    this.#settle(entry, () => entry.reject(error));
    if (!lane.inFlight && lane.pending.length === 0) this.#retire(key, lane);
  }

  #settle(entry: Entry, action: () => void): void {
    if (entry.settled) return;
    entry.settled = true;
    entry.detach();
    action();
  }

  #retire(key: string, lane: Lane): void {
    if (lane.timer !== undefined) clearTimeout(lane.timer);
    lane.timer = undefined;
    if (this.#lanes.get(key) === lane) this.#lanes.delete(key);
  }

  #dispatch(key: string, lane: Lane): void {
    const batch: Entry[] = [];
    let inputs = 0;
    while (lane.pending.length > 0) {
      const next = lane.pending[0]!;
      if (batch.length > 0 && (next.solo === true || inputs + next.input.length > this.#maxInputs)) break;
      lane.pending.shift();
      batch.push(next);
      inputs += next.input.length;
      if (next.solo === true) break;
    }
    if (batch.length === 0) {
      this.#retire(key, lane);
      return;
    }
    lane.inFlight = true;
    // The call goes when every request in it gave up (each one's own promise is already rejected).
    const controller = new AbortController();
    const abandoned = () => {
      if (batch.every((entry) => entry.settled)) controller.abort(new DOMException('every request in the batch was cancelled', 'AbortError'));
    };
    for (const entry of batch) entry.options.signal?.addEventListener('abort', abandoned, { once: true });
    for (const entry of batch) {
      // Once per request, though a refused batch sends it again.
      if (entry.started !== true) entry.options.onStart?.();
      entry.started = true;
    }
    const flat = batch.flatMap((entry) => entry.input);
    void this.#embed({ ...lane.request, input: flat }, controller.signal)
      .then(
        (answer) => {
          const tokens = shareTokens(
            answer.prompt_tokens,
            batch.map((entry) => entry.input.reduce((sum, text) => sum + text.length, 0)),
          );
          let offset = 0;
          batch.forEach((entry, index) => {
            const embeddings = answer.embeddings.slice(offset, offset + entry.input.length);
            offset += entry.input.length;
            this.#settle(entry, () =>
              entry.resolve({ embeddings, prompt_tokens: tokens[index]!, total_ms: answer.total_ms, load_ms: answer.load_ms, batch_inputs: flat.length }),
            );
          });
        },
        (error: unknown) => {
          const live = batch.filter((entry) => !entry.settled);
          if (live.length > 1 && refusedInput(error)) {
            // Which input was refused is not said: each request goes again alone, first in line.
            for (const entry of live) entry.solo = true;
            lane.pending.unshift(...live);
            return;
          }
          for (const entry of batch) this.#settle(entry, () => entry.reject(error));
        },
      )
      .finally(() => {
        for (const entry of batch) entry.options.signal?.removeEventListener('abort', abandoned);
        lane.inFlight = false;
        if (lane.pending.length === 0) this.#retire(key, lane);
        else this.#dispatch(key, lane);
      });
  }
}
