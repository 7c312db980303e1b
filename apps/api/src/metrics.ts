import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StreamEvent } from '@switchyard/protocol';
import { CachedRead } from '@switchyard/redis';
import { splitQueueModel } from '@switchyard/protocol';

/** LLM work is slow: time to first token spans tens of ms (warm) to minutes (cold 70B load). */
export const TTFT_BUCKETS_SECONDS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300];
/** Queue waits run from nothing (a free slot) to the longest Retry-After. */
export const WAIT_BUCKETS_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600];
/** Actual minus estimated wait: negative when the estimate was pessimistic. */
export const WAIT_ERROR_BUCKETS_SECONDS = [-60, -30, -10, -5, -2, -1, -0.5, -0.1, 0.1, 0.5, 1, 2, 5, 10, 30, 60];

/** Fleet-wide numbers read from the admission ledger at scrape time. */
export interface LedgerSnapshot {
  models: Array<{ model: string; oldestWaitS: number; drainPerS: number }>;
  /** `outcome` is completed | failed | cancelled | expired | reconciled | aborted. */
  outcomes: Array<{ model: string; outcome: string; count: number }>;
}

export interface ApiMetrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  jobsSubmitted: Counter<'model' | 'priority'>;
  jobsRefused: Counter<'model' | 'reason'>;
  jobsCancelled: Counter<'model' | 'state' | 'cause'>;
  jobsRequeued: Counter;
  queueWait: Histogram<'model'>;
  queueWaitEstimated: Histogram<'model'>;
  queueWaitEstimateError: Histogram<'model'>;
  admissionRepairs: Counter<'action'>;
  ttft: Histogram<'model' | 'cold'>;
  sseStreams: Gauge;
}

/**
 * The API's metrics that its services record as things happen, on a registry it is handed
 * (never the global one). The queue gauges, read from Redis at scrape time, are registered by
 * `registerQueueMetrics` once the services they read exist.
 */
export function createApiMetrics(registry: Registry): ApiMetrics {
  collectDefaultMetrics({ register: registry, prefix: 'switchyard_api_' });
  return modelLabelled({
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
      help: 'Cancellations this API process made, by the state the job was in and the cause (client, disconnect, compat_disconnect, operator)',
      labelNames: ['model', 'state', 'cause'],
      registers: [registry],
    }),
    jobsRequeued: new Counter({
      name: 'switchyard_jobs_requeued_total',
      help: 'Jobs put back in their queues because the agent running them stopped beating (AGENT_LAPSE_MS), by the replica running maintenance',
      registers: [registry],
    }),
    queueWait: new Histogram({
      name: 'switchyard_queue_wait_seconds',
      help: 'Submission to start (claimed by an agent or first token, whichever is seen first), observed by the replica running maintenance',
      labelNames: ['model'],
      buckets: WAIT_BUCKETS_SECONDS,
      registers: [registry],
    }),
    queueWaitEstimated: new Histogram({
      name: 'switchyard_queue_wait_estimated_seconds',
      help: 'The wait estimated at admission for the same jobs as switchyard_queue_wait_seconds (those with a drain rate)',
      labelNames: ['model'],
      buckets: WAIT_BUCKETS_SECONDS,
      registers: [registry],
    }),
    queueWaitEstimateError: new Histogram({
      name: 'switchyard_queue_wait_estimate_error_seconds',
      help: 'Actual minus estimated wait per job',
      labelNames: ['model'],
      buckets: WAIT_ERROR_BUCKETS_SECONDS,
      registers: [registry],
    }),
    admissionRepairs: new Counter({
      name: 'switchyard_admission_repairs_total',
      help: 'Corrections reconciliation made to admission counts (released: a job ended without a terminal event; started: seen active; drift: counters rebuilt)',
      labelNames: ['action'],
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
  });
}

/**
 * Some callers record with the queue key a job went to (`model@digest` for a pinned job);
 * the `model` label is always the model, so series of one model never split by build.
 */
function modelLabelled(metrics: ApiMetrics): ApiMetrics {
  const model = (labels: unknown) =>
    labels !== null && typeof labels === 'object' && typeof (labels as { model?: unknown }).model === 'string'
      ? { ...labels, model: splitQueueModel((labels as { model: string }).model).model }
      : labels;
  for (const metric of [metrics.queueWait, metrics.queueWaitEstimated, metrics.queueWaitEstimateError, metrics.ttft] as Array<{ observe: (...args: unknown[]) => void }>) {
    const observe = metric.observe.bind(metric);
    metric.observe = (labels: unknown, ...rest: unknown[]) => observe(model(labels), ...rest);
  }
  for (const metric of [metrics.jobsSubmitted, metrics.jobsRefused, metrics.jobsCancelled] as Array<{ inc: (...args: unknown[]) => void }>) {
    const inc = metric.inc.bind(metric);
    metric.inc = (labels: unknown, ...rest: unknown[]) => inc(model(labels), ...rest);
  }
  return metrics;
}

export interface QueueMetricSources {
  /** Jobs waiting (incl. prioritized and delayed) and running per model queue. */
  queueCounts(): Promise<Map<string, { waiting: number; active: number }>>;
  /** The admission ledger's fleet-wide figures. */
  ledger(): Promise<LedgerSnapshot>;
}

/**
 * Gauges and fleet-wide counters filled at scrape time from Redis (queue depth, oldest wait,
 * drain rate, outcomes), so scrapes cost Redis reads, not the hot path. One ledger read
 * serves every gauge of a scrape.
 */
export function registerQueueMetrics(registry: Registry, sources: QueueMetricSources): void {
  // The sources answer per queue key; a digest-pinned queue (`model@digest`) is its model's,
  // so every `model` label is the model: figures of its queues are summed (the oldest wait
  // is the longest), and the pinned queues' depth has a gauge of its own with a `digest`.
  const ledgerRead = new CachedRead(async () => byModel(await sources.ledger()), 100);
  const ledger = () => ledgerRead.get();
  const collectQueueDepth = async () => {
    const rows: Array<{ model: string; digest?: string; state: string; count: number }> = [];
    for (const [queueKey, counts] of await sources.queueCounts()) {
      const { model, digest } = splitQueueModel(queueKey);
      rows.push({ model, ...(digest !== undefined && { digest }), state: 'waiting', count: counts.waiting });
      rows.push({ model, ...(digest !== undefined && { digest }), state: 'active', count: counts.active });
    }
    return rows;
  };
  new Counter({
    name: 'switchyard_jobs_finished_total',
    help: 'Jobs that left the admission ledger, fleet-wide (same value on every replica), by outcome',
    labelNames: ['model', 'outcome'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of (await ledger()).outcomes) this.inc({ model: row.model, outcome: row.outcome }, row.count);
    },
  });
  new Counter({
    name: 'switchyard_jobs_expired_total',
    help: 'Jobs whose deadline passed before they started (in the queue or at claim), fleet-wide (same value on every replica)',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of (await ledger()).outcomes) if (row.outcome === 'expired') this.inc({ model: row.model }, row.count);
    },
  });
  new Gauge({
    name: 'switchyard_queue_oldest_wait_seconds',
    help: 'Age of the longest-waiting job per model queue (0 when none waits)',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of (await ledger()).models) this.set({ model: row.model }, row.oldestWaitS);
    },
  });
  new Gauge({
    name: 'switchyard_queue_drain_per_second',
    help: 'Measured completions per second per model over the drain window (what Retry-After and ETAs come from)',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of (await ledger()).models) this.set({ model: row.model }, row.drainPerS);
    },
  });
  new Gauge({
    name: 'switchyard_queue_depth',
    help: 'Jobs per model and state over all its queues, its digest-pinned ones included (waiting includes prioritized)',
    labelNames: ['model', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { model, state, count } of await collectQueueDepth()) this.inc({ model, state }, count);
    },
  });
  new Gauge({
    name: 'switchyard_pinned_queue_depth',
    help: 'Jobs pinned to one digest of a model, per state (also counted in switchyard_queue_depth)',
    labelNames: ['model', 'digest', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const { model, digest, state, count } of await collectQueueDepth()) if (digest !== undefined) this.set({ model, digest, state }, count);
    },
  });
}

/** Ledger figures per queue key, filed under their model. */
function byModel(snapshot: LedgerSnapshot): LedgerSnapshot {
  const models = new Map<string, { model: string; oldestWaitS: number; drainPerS: number }>();
  for (const row of snapshot.models) {
    const model = splitQueueModel(row.model).model;
    const entry = models.get(model) ?? { model, oldestWaitS: 0, drainPerS: 0 };
    entry.oldestWaitS = Math.max(entry.oldestWaitS, row.oldestWaitS);
    entry.drainPerS += row.drainPerS;
    models.set(model, entry);
  }
  const outcomes = new Map<string, { model: string; outcome: string; count: number }>();
  for (const row of snapshot.outcomes) {
    const model = splitQueueModel(row.model).model;
    const key = `${row.outcome}|${model}`;
    const entry = outcomes.get(key) ?? { model, outcome: row.outcome, count: 0 };
    entry.count += row.count;
    outcomes.set(key, entry);
  }
  return { models: [...models.values()], outcomes: [...outcomes.values()] };
}

const OBSERVED_JOBS_CAP = 10_000;

/**
 * Time to first token of every job whose `done` event this process relays, counted once per
 * job however many clients watch it (the ids remembered are capped).
 */
export function ttftObserver(metrics: ApiMetrics): (jobId: string, model: string, event: StreamEvent) => void {
  const observed = new Set<string>();
  return (jobId, model, event) => {
    if (event.type !== 'done' || observed.has(jobId)) return;
    observed.add(jobId);
    if (observed.size > OBSERVED_JOBS_CAP) observed.delete(observed.values().next().value!);
    metrics.ttft.observe({ model, cold: String(event.timings.load_ms > 0) }, event.timings.ttft_ms / 1000);
  };
}
