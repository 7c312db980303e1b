import type { FastifyError, FastifyRequest } from 'fastify';
import { ZodError } from 'zod';
import { ApiErrorCode, JobErrorCode, JobRequest, type JobRequestInput } from '@switchyard/protocol';
import { ApiError, errorHeaders, quoteInput, specificIssue, toApiError } from '../errors.js';
import { ModelUnsupportedError } from '../capabilities.js';

/**
 * An error on a compatibility endpoint, before it is rendered in the client's shape
 * (OpenAI's `{error: {message, type, param, code}}` or Ollama's `{error}`).
 *
 * Unlike `ApiError` it carries any HTTP status (job failures map to 502/504/…), the request
 * parameter at fault (OpenAI's `param`), and whether the client should retry: openai-node
 * retries every 5xx, 408, 409 and 429 unless told otherwise by `x-should-retry`.
 */
export class CompatError extends Error {
  override readonly name = 'CompatError';
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly options: { param?: string | null; retryAfterS?: number; retryable?: boolean; headers?: Record<string, string> } = {},
  ) {
    super(message);
  }

  get param(): string | null {
    return this.options.param ?? null;
  }

  /** Headers every wire sends with this error (see `errorHeaders`). */
  headers(): Record<string, string> {
    return errorHeaders({ status: this.status, retryAfterS: this.options.retryAfterS, headers: this.options.headers });
  }
}

/** A 400 for one request parameter, named the way the client wrote it (`messages[0].content`). */
export function invalidParam(param: string | null, message: string): CompatError {
  return new CompatError(400, ApiErrorCode.invalidRequest, message, { param, retryable: false });
}

/** A zod path as OpenAI names parameters: `messages[0].content`. */
export function paramName(path: ReadonlyArray<PropertyKey>): string {
  let name = '';
  for (const segment of path) {
    if (typeof segment === 'number') name += `[${segment}]`;
    else name += name === '' ? String(segment) : `.${String(segment)}`;
  }
  return name;
}

/** The first problem of a zod failure as a 400 naming its parameter. */
export function fromZodError(error: ZodError, rename: (param: string) => string = (param) => param): CompatError {
  const first = error.issues[0];
  if (!first) return invalidParam(null, 'invalid request body');
  const issue = specificIssue(first);
  if (issue.code === 'unrecognized_keys') {
    return invalidParam(
      null,
      `unknown field(s) ${issue.keys
        .slice(0, 10)
        .map((key) => quoteInput(key, 40))
        .join(', ')}`,
    );
  }
  const param = rename(paramName(issue.path));
  if (param === '') return invalidParam(null, `invalid request body: ${issue.message}`);
  return invalidParam(param, `invalid value for '${param}': ${issue.message}`);
}

function fromApiError(error: ApiError, status = error.status, retryable?: boolean): CompatError {
  if (error instanceof ModelUnsupportedError) return new CompatError(400, error.code, error.message, { param: error.field, retryable: false });
  return new CompatError(status, error.code, error.message, {
    ...(error.retryAfterS !== undefined && { retryAfterS: error.retryAfterS }),
    headers: error.headers,
    ...(retryable !== undefined && { retryable }),
  });
}

/** A job request built from a compatibility body, validated; a failure is a 400 naming the parameter (renamed to the client's name for it). */
export function validJobRequest(input: JobRequestInput, rename?: (param: string) => string): JobRequest {
  const parsed = JobRequest.safeParse(input);
  if (!parsed.success) throw fromZodError(parsed.error, rename);
  return parsed.data;
}

/**
 * Any error thrown on a compatibility route as a CompatError, classified by the native
 * mapping (`toApiError`: body parsing, Redis down, other 4xx, internal). A client error keeps
 * its own 4xx status and is marked not worth retrying.
 */
export function toCompatError(error: unknown, request: FastifyRequest): CompatError {
  if (error instanceof CompatError) return error;
  if (error instanceof ZodError) return fromZodError(error);
  if (error instanceof ApiError) return fromApiError(error);
  const apiError = toApiError(error, request);
  const statusCode = (error as Partial<FastifyError> | null)?.statusCode;
  const status = typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500 ? statusCode : apiError.status;
  return fromApiError(apiError, status, status < 500 ? false : undefined);
}

/**
 * A job that ended in an `error` event, as an HTTP error for an answer that has not started
 * yet (non-streaming requests). Statuses follow what the failure means for a retry:
 * a deadline that passed or a cancellation will not get better by resubmitting.
 */
export function jobFailureError(code: string, message: string): CompatError {
  switch (code) {
    case JobErrorCode.cancelled:
      return new CompatError(409, code, `the job was cancelled: ${message}`, { retryable: false });
    case JobErrorCode.deadlineExceeded:
      return new CompatError(504, code, message, { retryable: false });
    case JobErrorCode.modelNotFound:
      return new CompatError(404, code, message, { retryable: false });
    case JobErrorCode.invalidJob:
    case JobErrorCode.modelUnsupported:
      return new CompatError(400, code, message, { retryable: false });
    case JobErrorCode.modelTooLarge:
      return new CompatError(422, code, message, { retryable: false });
    default:
      return new CompatError(502, code, message);
  }
}
