import { ClientErrorCode, SwitchyardError, abortReason, errorFromResponse } from './errors.js';
import { backoffMs, sleep } from './timing.js';

/**
 * How refusals are retried. The API refuses work it cannot take now with `429` or `503` and
 * a `Retry-After`; the SDK waits that long and tries again, within a bounded budget, so
 * backpressure slows callers down instead of turning into a retry storm.
 */
export interface RetryOptions {
  /** Retries of one refused call before the refusal is thrown. Default 3; 0 disables. */
  maxRetries?: number;
  /**
   * Total time one call may spend waiting between retries. A `Retry-After` longer than what
   * is left is not waited for: the refusal is thrown at once (its `retryAfterS` tells the
   * caller when to come back). Default 60 000 ms.
   */
  maxWaitMs?: number;
  /** Called before each wait, e.g. to tell a user why nothing happens yet. */
  onRetry?: (info: { attempt: number; delayMs: number; error: SwitchyardError }) => void;
}

/** The retry budget of one call (a request, or one `stream()` for all its reconnects). */
export class RetryBudget {
  private retriesLeft: number;
  private waitLeftMs: number;
  private attempt = 0;

  constructor(private readonly options: RetryOptions = {}) {
    this.retriesLeft = options.maxRetries ?? 3;
    this.waitLeftMs = options.maxWaitMs ?? 60_000;
  }

  /** Milliseconds to wait before retrying after `error`, or undefined if it must be thrown. */
  delayFor(error: SwitchyardError): number | undefined {
    if (!error.isRefusal || this.retriesLeft <= 0) return undefined;
    this.attempt++;
    const delay = error.retryAfterS !== undefined ? Math.ceil(error.retryAfterS * 1000) : backoffMs(this.attempt, 500, 8_000);
    if (delay > this.waitLeftMs) return undefined;
    this.retriesLeft--;
    this.waitLeftMs -= delay;
    this.options.onRetry?.({ attempt: this.attempt, delayMs: delay, error });
    return delay;
  }
}

export interface HttpConfig {
  baseUrl: string;
  apiKey?: string;
  headers?: Record<string, string>;
  fetch: typeof fetch;
  retry: RetryOptions;
}

export interface RequestOptions {
  body?: unknown;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /** Statuses that are answers, not errors (default: 2xx). */
  accept?: (status: number) => boolean;
}

/** HTTP to the native API: base URL, auth, JSON, refusal retries. Uses only `fetch`. */
export class Http {
  constructor(private readonly config: HttpConfig) {}

  url(path: string): string {
    return `${this.config.baseUrl.replace(/\/+$/, '')}${path}`;
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      ...this.config.headers,
      ...(this.config.apiKey !== undefined && { Authorization: `Bearer ${this.config.apiKey}` }),
      ...extra,
    };
  }

  /** One fetch, with connection failures as SwitchyardError (`connection_failed`). */
  async fetchOnce(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const headers = this.headers({ Accept: 'application/json', ...options.headers });
    if (options.body !== undefined) headers['Content-Type'] = 'application/json';
    try {
      return await this.config.fetch(this.url(path), {
        method,
        headers,
        ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
        ...(options.signal && { signal: options.signal }),
      });
    } catch (error) {
      if (options.signal?.aborted) throw abortReason(options.signal);
      throw new SwitchyardError(ClientErrorCode.connectionFailed, `could not reach ${this.url(path)}: ${(error as Error).message}`, { cause: error });
    }
  }

  /** A request whose refusals (429/503) are retried after `Retry-After`, within the budget. */
  async request(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const budget = new RetryBudget(this.config.retry);
    const accept = options.accept ?? ((status: number) => status >= 200 && status < 300);
    for (;;) {
      const response = await this.fetchOnce(method, path, options);
      if (accept(response.status)) return response;
      const error = await errorFromResponse(response);
      const delay = budget.delayFor(error);
      if (delay === undefined) throw error;
      await sleep(delay, options.signal);
    }
  }

  /** `request` and the JSON body of the answer. */
  async json(method: string, path: string, options: RequestOptions = {}): Promise<{ status: number; body: unknown }> {
    const response = await this.request(method, path, options);
    const text = await response.text();
    try {
      return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
    } catch (error) {
      throw new SwitchyardError(ClientErrorCode.invalidResponse, `${method} ${path} answered ${response.status} with a body that is not JSON`, {
        status: response.status,
        cause: error,
      });
    }
  }
}
