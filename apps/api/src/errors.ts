import type { FastifyError, FastifyRequest } from 'fastify';
import type { ZodError } from 'zod';
import type { core } from 'zod';
import { API_ERROR_STATUS, ApiErrorCode, type ApiErrorBody } from '@switchyard/protocol';

// The codes and their statuses live in protocol, shared with the SDK and the CLI; the API
// package keeps exporting the type from here for code that imports it with ApiError.
export { ApiErrorCode };

export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly retryAfterS?: number,
    /** Extra response headers (`X-Queue-Depth` on refusals). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get status(): number {
    return API_ERROR_STATUS[this.code];
  }

  body(): ApiErrorBody {
    return {
      error: { code: this.code, message: this.message, ...(this.retryAfterS !== undefined && { retry_after_s: retryAfterSeconds(this.retryAfterS) }) },
    };
  }
}

/** Retry-After as sent: whole seconds, rounded up, at least 1 (the request was refused, so not "now"). */
function retryAfterSeconds(seconds: number): number {
  return Math.max(1, Math.ceil(seconds));
}

/**
 * Client input quoted in an error message: JSON-quoted and cut to `max` characters, so an
 * error never echoes a 3 MB model name or URL back.
 */
export function quoteInput(value: unknown, max = 100): string {
  const text = typeof value === 'string' ? value : String(value);
  return JSON.stringify(truncateInput(text, max)) + (text.length > max ? ` (${text.length} characters)` : '');
}

/** Client input cut to `max` characters, for messages that quote it in a wire's own wording. */
export function truncateInput(text: string, max = 100): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

/**
 * The issue a union's failure is really about. Zod reports a value no branch took as one
 * `invalid_union` ("Invalid input"); when all branches but one refused the value's type, the
 * value was meant for that one, and when that branch's issue is about the value itself
 * (`too_big`, `too_small`: "at most 2048 inputs") it says what is wrong. An issue deeper in
 * the value keeps the union's path (the field the client wrote), and a union with its own
 * message keeps it.
 */
export function specificIssue(issue: core.$ZodIssue): core.$ZodIssue {
  if (issue.code !== 'invalid_union' || issue.message !== 'Invalid input') return issue;
  const typed = issue.errors.filter((branch) => !(branch[0]?.code === 'invalid_type' && branch[0].path.length === 0));
  const inner = typed.length === 1 ? typed[0]![0] : undefined;
  if (!inner || inner.path.length > 0) return issue;
  return specificIssue({ ...inner, path: [...issue.path, ...inner.path] } as core.$ZodIssue);
}

/** Turns a zod failure into a 400 that names each bad field. */
export function invalidRequest(error: ZodError, what = 'request body'): ApiError {
  const problems = error.issues.map(specificIssue).map((issue) => {
    const path = issue.path.join('.');
    if (issue.code === 'unrecognized_keys')
      return `unknown field(s) ${issue.keys
        .slice(0, 10)
        .map((k) => quoteInput(k, 40))
        .join(', ')}${path ? ` in ${path}` : ''}`;
    return path ? `${path}: ${issue.message}` : issue.message;
  });
  return new ApiError(ApiErrorCode.invalidRequest, `invalid ${what}: ${problems.join('; ')}`);
}

/** True for errors that mean Redis could not be reached (ioredis with fail-fast settings). */
export function isRedisUnavailable(error: unknown): boolean {
  const message = error instanceof Error ? error.message : '';
  // By name too: the message ("Reached the max retries per request limit…") never matched
  // `MaxRetriesPerRequest`, so a command cut off by a Redis restart answered 500 (test/e2e/redis-restart.test.ts).
  if (error instanceof Error && error.name === 'MaxRetriesPerRequestError') return true;
  return /Stream isn't writeable|enableOfflineQueue|Connection is closed|ECONNREFUSED|MaxRetriesPerRequest|ETIMEDOUT|EHOSTUNREACH/.test(message);
}

/**
 * Any thrown value as an ApiError: body-parsing failures, Redis down, other 4xx, and the rest
 * as an internal error (logged). The one mapping behind the native and compatibility error handlers.
 */
export function toApiError(error: unknown, request: FastifyRequest): ApiError {
  if (error instanceof ApiError) return error;
  const { code, statusCode, message } = (typeof error === 'object' && error !== null ? error : {}) as Partial<FastifyError>;
  const text = typeof message === 'string' ? message : String(error);
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
    return new ApiError(ApiErrorCode.bodyTooLarge, `request body is larger than the limit of ${request.routeOptions.bodyLimit ?? 'the server'} bytes`);
  }
  if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new ApiError(ApiErrorCode.unsupportedMediaType, `content type ${quoteInput(request.headers['content-type'] ?? '')} is not supported; send application/json`);
  }
  if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return new ApiError(ApiErrorCode.invalidJson, 'request body is empty; send a JSON object');
  if (code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError || (statusCode === 400 && /JSON/i.test(text))) {
    return new ApiError(ApiErrorCode.invalidJson, `request body is not valid JSON: ${text}`);
  }
  if (isRedisUnavailable(error)) {
    request.log.warn({ err: error }, 'redis unavailable');
    return new ApiError(ApiErrorCode.redisUnavailable, 'the queue store is unavailable; retry shortly', 1);
  }
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) return new ApiError(ApiErrorCode.invalidRequest, text);
  request.log.error({ err: error }, 'unhandled error');
  return new ApiError(ApiErrorCode.internalError, 'internal error');
}

/**
 * Headers an error answer carries on every wire: its extras (`X-Queue-Depth`), Retry-After in
 * whole seconds (at least 1) and in milliseconds (openai-node and others read the exact value
 * when present), and the auth challenge on a 401.
 */
export function errorHeaders(error: { status: number; retryAfterS?: number | undefined; headers?: Record<string, string> }): Record<string, string> {
  const headers: Record<string, string> = { ...error.headers };
  if (error.retryAfterS !== undefined) {
    headers['Retry-After'] = String(retryAfterSeconds(error.retryAfterS));
    headers['Retry-After-Ms'] = String(Math.max(1, Math.round(error.retryAfterS * 1000)));
  }
  if (error.status === 401) headers['WWW-Authenticate'] = 'Bearer realm="switchyard"';
  return headers;
}
