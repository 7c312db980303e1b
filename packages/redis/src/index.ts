export {
  createRedis,
  waitUntilReady,
  closeRedis,
  describeRedisTarget,
  isCluster,
  redisTarget,
  type ConnectionExtras,
  type ConnectionRole,
  type RedisConnection,
  type RedisNode,
  type RedisTarget,
} from './connection.js';
export { ErrorThrottle, describeRedisError, isRedisUnreachable, redactRedisUrl, repeatsOf } from './connection-errors.js';
export { EventLog, parseEventPayload, rawEvent, type RawEvent } from './event-log.js';
export { SharedSubscriber, type MessageListener } from './shared-subscriber.js';
export { QueueRegistry, type ModelQueue } from './queue-registry.js';
export { FleetRegistry } from './fleet.js';
export { ModelCatalogStore } from './model-catalog.js';
export { ManualWorker } from './manual-worker.js';
export { JobLifecycle, JobRecords, ScriptedJobs, type Attempt, type EnqueueRequest, type JobLifecycleOptions, type StoredJob, type TransitionOutcome } from './job/index.js';
export { AgentControlMessage, cancelMessage, CancelMessage } from './control-messages.js';
export {
  AdmissionLedger,
  type AdmissionLimits,
  type AdmissionTuning,
  type AdmitRequest,
  type AdmitResult,
  type JobPosition,
  type ModelLedgerStats,
  type EstimateRequest,
  type RefusalCode,
  type ReleaseKind,
  type WaitSample,
} from './admission-ledger.js';
export { LIMIT_NAMES, REFUSAL_CODES, limitField, statusOfFailure, type LimitName } from './ledger-layout.js';
export { CachedRead } from './cached-read.js';
export { StreamPresence, STREAM_PRESENCE_REFRESH_MS, STREAM_PRESENCE_TTL_MS } from './stream-presence.js';
export { defineScripts, scriptDefinitions, type ScriptCommandName, type ScriptDefinition } from './scripts.js';
export {
  REQUIRED_REDIS_SETTINGS,
  RedisSettingsRefused,
  checkRedisSettings,
  checkRedisSettingsAtStart,
  readRedisSettings,
  type RedisSettingsReading,
} from './redis-settings.js';
