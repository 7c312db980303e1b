import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** LLM work is slow: time to first token spans tens of ms (warm) to minutes (cold 70B load). */
export const TTFT_BUCKETS_SECONDS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];

export interface ApiMetrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  jobsSubmitted: Counter<'model' | 'priority'>;
  jobsRefused: Counter<'model' | 'reason'>;
  jobsCancelled: Counter<'model' | 'state'>;
  ttft: Histogram<'model' | 'cold'>;
  sseStreams: Gauge;
  queueDepth: Gauge<'model' | 'state'>;
}

/**
 * The API's metrics on a registry it is handed (never the global one). Queue depth is
 * filled at scrape time by `collectQueueDepth`, so scrapes cost Redis reads, not the hot path.
 */
export function createApiMetrics(
  registry: Registry,
  collectQueueDepth: () => Promise<Array<{ model: string; state: string; count: number }>>,
): ApiMetrics {
  collectDefaultMetrics({ register: registry, prefix: 'switchyard_api_' });
  return {
    registry,
    httpRequests: new Counter({
      name: 'switchyard_http_requests_total',
      help: 'HTTP requests answered, by route template and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    jobsSubmitted: new Counter({
      name: 'switchyard_jobs_submitted_total',
      help: 'Jobs accepted onto a model queue',
      labelNames: ['model', 'priority'],
      registers: [registry],
    }),
    jobsRefused: new Counter({
      name: 'switchyard_jobs_refused_total',
      help: 'Job submissions refused at admission, by reason',
      labelNames: ['model', 'reason'],
      registers: [registry],
    }),
    jobsCancelled: new Counter({
      name: 'switchyard_jobs_cancelled_total',
      help: 'Cancellations requested through the API, by the state the job was in',
      labelNames: ['model', 'state'],
      registers: [registry],
    }),
    ttft: new Histogram({
      name: 'switchyard_time_to_first_token_seconds',
      help: 'Submission to first token, for jobs whose stream this API process relayed',
      labelNames: ['model', 'cold'],
      buckets: TTFT_BUCKETS_SECONDS,
      registers: [registry],
    }),
    sseStreams: new Gauge({
      name: 'switchyard_sse_streams',
      help: 'SSE streams open on this API process',
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'switchyard_queue_depth',
      help: 'Jobs per model queue and state (waiting includes prioritized)',
      labelNames: ['model', 'state'],
      registers: [registry],
      async collect() {
        this.reset();
        for (const { model, state, count } of await collectQueueDepth()) this.set({ model, state }, count);
      },
    }),
  };
}
