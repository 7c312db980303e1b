/**
 * `@switchyard/sdk`: a typed client for Switchyard's native API — submit, read, cancel, and
 * stream jobs with automatic resume and backpressure-aware retries. Runs wherever `fetch`
 * does (Node 20+, browsers, Deno, Bun).
 *
 * @example
 * ```ts
 * import { SwitchyardClient } from '@switchyard/sdk';
 * const client = new SwitchyardClient({ baseUrl: 'http://localhost:8080' });
 * const { text } = await client.run({ model: 'qwen2.5:0.5b', prompt: 'Say hi' });
 * ```
 *
 * @packageDocumentation
 */
export {
  SwitchyardClient,
  type SwitchyardClientOptions,
  type CallOptions,
  type SubmittedJob,
  type JobOutcome,
  type RunOptions,
  type EmbedOptions,
  type ToolCallEvent,
  type ToolCallOutcome,
  type AgentDrainAnswer,
} from './client.js';
export { ClientErrorCode, SwitchyardError, type SwitchyardErrorCode } from './errors.js';
// The server's codes, so a caller matches `error.code` without depending on the protocol package.
export { ErrorCode } from '@switchyard/protocol';
export type { RetryOptions } from './http.js';
export type { JobEventStream, ReconnectInfo, ReconnectOptions, StreamOptions } from './job-stream.js';
export type { ModelEntry, ModelQueueStats, PinnedQueueStats } from './models.js';
export type { ApiKeyInfo, CreatedApiKey, CreateKeyRequest } from './api-keys.js';
export type { CatalogEntryInput, CatalogModelStatus, RolloutView } from './catalog.js';
export type {
  AgentHeartbeat,
  ChatMessage,
  EmbedInput,
  FinishReason,
  JobKind,
  JobRecord,
  JobRequestInput,
  JobStatus,
  StreamEvent,
  StreamEventType,
  ToolCall,
  ToolCallResult,
  ToolChoice,
  ToolDefinition,
} from '@switchyard/protocol';
