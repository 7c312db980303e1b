import type { FastifyRequest } from 'fastify';
import type { RedisConnection } from '@switchyard/redis';
import type { RedisKeys, StreamEvent } from '@switchyard/protocol';
import type { AdmissionLedger, ModelCatalogStore, StreamPresence } from '@switchyard/redis';
import type { Admission } from './admission.js';
import type { ApiKeyStore } from './auth.js';
import type { Backlog } from './backlog.js';
import type { ApiConfig } from './config.js';
import type { EventRelay } from './event-relay.js';
import type { JobEventFeed } from './job-event-feed.js';
import type { FleetView } from './fleet-view.js';
import type { JobService } from './job-service.js';
import type { ApiMetrics } from './metrics.js';

/** What route handlers need, built once per process in `createApi`. */
export interface ApiContext {
  config: ApiConfig;
  redis: RedisConnection;
  keys: RedisKeys;
  jobs: JobService;
  fleet: FleetView;
  /** The fleet catalog (desired state of models on disk): `/admin/models`, Ollama's `/api/pull` and `/api/delete`. */
  catalog: ModelCatalogStore;
  relay: EventRelay;
  /** A job's events in order, for any wire format (SSE, OpenAI chunks, Ollama NDJSON). */
  feed: JobEventFeed;
  metrics: ApiMetrics;
  admission: Admission;
  ledger: AdmissionLedger;
  /** Jobs waiting for a GPU and refused demand, per model: `/v1/backlog`, `switchyard_backlog`. */
  backlog: Backlog;
  /** Marks the jobs whose native event stream this replica has open (the disconnect grace). */
  presence: StreamPresence;
  keyStore: ApiKeyStore;
  /** Set once the replica is stopping: /readyz answers 503 so a balancer sends nothing new. */
  lifecycle: { draining: boolean };
  /**
   * The tenant a request acts for, from its API key; throws ApiError `unauthorized` (401)
   * when keys are configured and the request has no valid one. Open mode: `default`.
   */
  tenantOf(request: FastifyRequest): string;
  /** True for admin keys (and for everyone in open mode). */
  isAdmin(request: FastifyRequest): boolean;
  /** Resolves true once the job's terminal event is seen, false after `ms`. */
  waitForJobEnd(jobId: string, ms: number): Promise<boolean>;
  /** Called for every event relayed to a client (metrics). */
  observeEvent(jobId: string, model: string, event: StreamEvent): void;
}
