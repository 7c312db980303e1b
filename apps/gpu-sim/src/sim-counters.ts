/** Monotonic counters behind `/sim/stats`; plain numbers, bumped by whoever sees the event. */
export class SimCounters {
  /** Generate and chat requests that named a known model and passed validation. */
  requestsTotal = 0;
  tokensGeneratedTotal = 0;
  /** Requests that ended because their client went away (while queued or generating). */
  cancelledTotal = 0;
  /** Requests refused with 503 because the queue was full. */
  rejectedTotal = 0;
  /** Requests answered with an error (4xx/5xx or an error line in a stream). */
  errorsTotal = 0;
  loadsTotal = 0;
  unloadsTotal = 0;
  /** Unloads forced to make room for another model (a subset of unloadsTotal). */
  evictionsTotal = 0;
  /** Highest VRAM ever reserved at once; never above the budget. */
  vramHighWaterBytes = 0;
  /** Tool calls answered on /api/chat (a message with two calls counts two). */
  toolCallsTotal = 0;
  /** /api/embed and /api/embeddings requests that named a known embedding model and passed validation (load-only ones too). */
  embedRequestsTotal = 0;
  /** Embed calls served to the end (requests with at least one input): what a batching client saves. */
  embedCallsTotal = 0;
  /** Inputs embedded by those calls. */
  embedInputsTotal = 0;
  /** Their tokens (after truncation). */
  embedPromptTokensTotal = 0;
  /** Inputs cut to the context length. */
  embedTruncatedTotal = 0;
  /** Downloads (`/api/pull`) started, completed, failed (refused for disk, dropped), and bytes downloaded. */
  pullsStarted = 0;
  pullsCompleted = 0;
  pullsFailed = 0;
  pullBytes = 0;
}
