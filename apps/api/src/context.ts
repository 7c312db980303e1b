import type { FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { RedisKeys, StreamEvent } from '@switchyard/protocol';
import type { ApiConfig } from './config.js';
import type { EventRelay } from './event-relay.js';
import type { JobEventFeed } from './job-event-feed.js';
import type { FleetView } from './fleet-view.js';
import type { JobService } from './job-service.js';
import type { ApiMetrics } from './metrics.js';

/** What route handlers need, built once per process in `createApi`. */
export interface ApiContext {
  config: ApiConfig;
  redis: Redis;
  keys: RedisKeys;
  jobs: JobService;
  fleet: FleetView;
  relay: EventRelay;
  /** A job's events in order, for any wire format (SSE, OpenAI chunks, Ollama NDJSON). */
  feed: JobEventFeed;
  metrics: ApiMetrics;
  /** The tenant a request acts for. Until API keys exist every caller is `default`. */
  tenantOf(request: FastifyRequest): string;
  /** Resolves true once the job's terminal event is seen, false after `ms`. */
  waitForJobEnd(jobId: string, ms: number): Promise<boolean>;
  /** Called for every event relayed to a client (metrics). */
  observeEvent(jobId: string, model: string, event: StreamEvent): void;
}
