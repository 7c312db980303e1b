import { ReceivedApiErrorBody, type ErrorCode } from '@switchyard/protocol';

/** Codes the SDK gives failures that no server answer carried a code for. */
export const ClientErrorCode = {
  /** The API could not be reached, or an event stream could not be re-established. */
  connectionFailed: 'connection_failed',
  /** An answer or event without the shape the API documents. */
  invalidResponse: 'invalid_response',
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

/**
 * A {@link SwitchyardError}'s code: one a Switchyard server sends ({@link ErrorCode}), one of
 * the SDK's own ({@link ClientErrorCode}), `http_<status>` for an error answer without a
 * Switchyard body (a proxy's page), or any other string: a newer API may send codes this
 * SDK does not know, and they are passed on as they came.
 */
export type SwitchyardErrorCode = ErrorCode | ClientErrorCode | `http_${number}` | (string & {});

/**
 * Every failure the SDK reports: an error answer of the API (`status` set, `code` from its
 * body, e.g. `model_not_found`, `no_capacity`), a response that failed validation
 * (`invalid_response`), a connection that could not be (re)established
 * (`connection_failed`), or a job that ended in an `error` event (`code` from the event,
 * e.g. `cancelled`, `deadline_exceeded`; `jobId` set).
 *
 * @example
 * ```ts
 * try {
 *   await client.submit({ model: 'llama3.1:8b', prompt: 'hi' });
 * } catch (error) {
 *   if (error instanceof SwitchyardError && error.code === ErrorCode.modelNotFound) console.error(error.message);
 *   else throw error;
 * }
 * ```
 */
export class SwitchyardError extends Error {
  override readonly name = 'SwitchyardError';
  /** HTTP status of the answer, when the error is one. */
  readonly status: number | undefined;
  /** Stable error code. */
  readonly code: SwitchyardErrorCode;
  /** Seconds the API asked to wait before retrying (429/503 refusals). */
  readonly retryAfterS: number | undefined;
  /** The job the error is about, for job failures. */
  readonly jobId: string | undefined;

  constructor(code: SwitchyardErrorCode, message: string, details: { status?: number; retryAfterS?: number; jobId?: string; cause?: unknown } = {}) {
    super(message, details.cause !== undefined ? { cause: details.cause } : undefined);
    this.code = code;
    this.status = details.status;
    this.retryAfterS = details.retryAfterS;
    this.jobId = details.jobId;
  }

  /** True for refusals that say "come back later" (429, 503). */
  get isRefusal(): boolean {
    return this.status === 429 || this.status === 503;
  }
}

/**
 * Seconds to wait from a `Retry-After` header (seconds or an HTTP date), else from the
 * body's `retry_after_s`; undefined when neither says.
 */
export function retryAfterSeconds(header: string | null, bodyValue?: number): number | undefined {
  if (header !== null && header.trim() !== '') {
    const seconds = Number(header);
    if (Number.isFinite(seconds) && seconds >= 0) return seconds;
    const date = Date.parse(header);
    if (!Number.isNaN(date)) return Math.max(0, (date - Date.now()) / 1000);
  }
  return bodyValue !== undefined && Number.isFinite(bodyValue) && bodyValue >= 0 ? bodyValue : undefined;
}

/** An error answer as a SwitchyardError, reading the native error body when there is one. */
export async function errorFromResponse(response: Response): Promise<SwitchyardError> {
  const text = await response.text().catch(() => '');
  let parsed: ReceivedApiErrorBody | undefined;
  try {
    const result = ReceivedApiErrorBody.safeParse(JSON.parse(text));
    if (result.success) parsed = result.data;
  } catch {
    // Not JSON (a proxy's HTML page, say): keep the text as the message.
  }
  const retryAfterS = retryAfterSeconds(response.headers.get('retry-after'), parsed?.error.retry_after_s);
  const code = parsed?.error.code ?? `http_${response.status}`;
  const message = parsed?.error.message ?? (text.trim().slice(0, 500) || `HTTP ${response.status} ${response.statusText}`);
  return new SwitchyardError(code, message, { status: response.status, ...(retryAfterS !== undefined && { retryAfterS }) });
}

/** The reason an AbortSignal carries, as something to throw. */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}
