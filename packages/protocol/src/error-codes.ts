/**
 * Every error code Switchyard puts on the wire, in one place: the API answers with them,
 * the SDK and the CLI match them, and none of the three spells one out by hand.
 *
 * Families share one string space: codes of the native API's error answers
 * (`{"error": {"code"}}`, {@link ApiErrorCode}), codes of jobs that failed (`error`
 * stream events, job records, BullMQ's `failedReason`; {@link JobErrorCode}), and the few
 * only the OpenAI-compatible wire answers with ({@link CompatErrorCode}). A code that means
 * the same in two families (`model_not_found`, `model_too_large`) is one string in both.
 * The strings are a public contract (clients and scripts match them): add codes, never
 * rename one.
 */

/** Codes of the native API's error answers; {@link API_ERROR_STATUS} gives each one's HTTP status. */
export const ApiErrorCode = {
  invalidRequest: 'invalid_request',
  invalidJson: 'invalid_json',
  unauthorized: 'unauthorized',
  forbidden: 'forbidden',
  methodNotAllowed: 'method_not_allowed',
  requestTimeout: 'request_timeout',
  bodyTooLarge: 'body_too_large',
  uriTooLong: 'uri_too_long',
  expectationFailed: 'expectation_failed',
  headersTooLarge: 'headers_too_large',
  unsupportedMediaType: 'unsupported_media_type',
  notFound: 'not_found',
  jobNotFound: 'job_not_found',
  agentNotFound: 'agent_not_found',
  /** `/admin/models/:name` of a model the fleet catalog has no entry for. */
  catalogEntryNotFound: 'catalog_entry_not_found',
  /** `/admin/models/:name/rollout` of a catalog entry that never had a rollout. */
  rolloutNotFound: 'rollout_not_found',
  /** Promote or abort asked of a model with no rollout running. */
  rolloutNotRunning: 'rollout_not_running',
  modelNotFound: 'model_not_found',
  modelTooLarge: 'model_too_large',
  /** The model cannot do what the request asks: chat on an embedding model, embeddings, tools or images on a model without them. */
  modelUnsupported: 'model_unsupported',
  jobFinished: 'job_finished',
  keyNotRevocable: 'key_not_revocable',
  queueFull: 'queue_full',
  tenantLimit: 'tenant_limit',
  tenantModelLimit: 'tenant_model_limit',
  globalLimit: 'global_limit',
  deadlineUnreachable: 'deadline_unreachable',
  noCapacity: 'no_capacity',
  redisUnavailable: 'redis_unavailable',
  internalError: 'internal_error',
} as const;
export type ApiErrorCode = (typeof ApiErrorCode)[keyof typeof ApiErrorCode];

/**
 * The HTTP status the native API answers each code with. Clients may rely on the pairing
 * (every 429 and 503 is a "come back later" with Retry-After), so it lives with the codes.
 */
export const API_ERROR_STATUS: Readonly<Record<ApiErrorCode, number>> = {
  invalid_request: 400,
  invalid_json: 400,
  unauthorized: 401,
  forbidden: 403,
  method_not_allowed: 405,
  request_timeout: 408,
  body_too_large: 413,
  uri_too_long: 414,
  expectation_failed: 417,
  headers_too_large: 431,
  unsupported_media_type: 415,
  not_found: 404,
  job_not_found: 404,
  agent_not_found: 404,
  catalog_entry_not_found: 404,
  rollout_not_found: 404,
  rollout_not_running: 409,
  model_not_found: 404,
  model_too_large: 422,
  model_unsupported: 400,
  job_finished: 409,
  key_not_revocable: 409,
  queue_full: 429,
  tenant_limit: 429,
  tenant_model_limit: 429,
  global_limit: 429,
  deadline_unreachable: 429,
  no_capacity: 503,
  redis_unavailable: 503,
  internal_error: 500,
};

/**
 * Codes carried by `error` events and job records. They travel inside BullMQ's
 * `failedReason` as `<code>: <message>` (see `formatJobFailure`), so they stay `[a-z_]+`.
 */
export const JobErrorCode = {
  cancelled: 'cancelled',
  deadlineExceeded: 'deadline_exceeded',
  invalidJob: 'invalid_job',
  backendError: 'backend_error',
  modelNotFound: 'model_not_found',
  /** The job's own context (num_ctx) needs more VRAM than the node that took it has. */
  modelTooLarge: 'model_too_large',
  /** The backend refused the request as beyond the model (Ollama: `"x" does not support chat`, `… does not support tools`). */
  modelUnsupported: 'model_unsupported',
  agentLost: 'agent_lost',
} as const;
export type JobErrorCode = (typeof JobErrorCode)[keyof typeof JobErrorCode];

/**
 * Codes of the OpenAI-compatible wire's errors (its `code` field) that neither family above
 * has: that wire also answers with every ApiErrorCode and passes job failure codes through.
 */
export const CompatErrorCode = {
  /** A streamed answer's job was restarted on another node after output was sent (cannot be taken back). */
  restarted: 'restarted',
  /** The job's event stream was lost (queue store unavailable) before the answer ended. */
  eventsUnavailable: 'events_unavailable',
} as const;
export type CompatErrorCode = (typeof CompatErrorCode)[keyof typeof CompatErrorCode];

/**
 * Every code a native client (the SDK, the CLI) can meet from a Switchyard server: an error
 * answer's or a job `error` event's. Readers must still accept codes outside it, since a
 * newer server may add some (see `ReceivedApiErrorBody`).
 */
export const ErrorCode = { ...ApiErrorCode, ...JobErrorCode } as const;
export type ErrorCode = ApiErrorCode | JobErrorCode;
