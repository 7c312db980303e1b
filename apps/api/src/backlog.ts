import { createHash } from 'node:crypto';
import type { RedisConnection } from '@switchyard/redis';
import { Gauge, type Registry } from 'prom-client';
import type { AdmissionKeys, JobRequest } from '@switchyard/protocol';
import type { JobRecords, ModelCatalogStore, QueueRegistry } from '@switchyard/redis';
import { queuesByModel, type FleetView } from './fleet-view.js';

/**
 * Submits refused `503 no_capacity` for a model that should come back (in the fleet catalog,
 * or listed by an agent lately) while no agent serves it. Such a submit is in no queue, yet
 * it is exactly the demand that must wake a pool scaled to zero: vLLM production-stack's
 * #1003 is that failure (requests refused while no pod serves never reach the metric the
 * autoscaler reads). Each one counts for `windowMs`, once per request fingerprint, so a
 * client retrying after Retry-After (the SDK does) counts once however often it retries.
 */
export class UnservedDemand {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Pick<AdmissionKeys, 'unserved'>,
    private readonly windowMs: number,
  ) {}

  /** Counts a refused submit for `windowMs` from now (again, when the same request comes back). */
  async note(model: string, fingerprint: string, now = Date.now()): Promise<void> {
    const key = this.keys.unserved(model);
    // One key, one MULTI: expired members go, this one is (re)stamped, the key lapses with its newest member.
    await this.redis
      .multi()
      .zremrangebyscore(key, '-inf', now)
      .zadd(key, now + this.windowMs, fingerprint)
      .pexpire(key, this.windowMs)
      .exec();
  }

  /** Requests still counting, per model. */
  async counts(models: string[], now = Date.now()): Promise<Map<string, number>> {
    const counts = await Promise.all(models.map((model) => this.redis.zcount(this.keys.unserved(model), `(${now}`, '+inf')));
    return new Map(models.map((model, index) => [model, counts[index] ?? 0]));
  }
}

/**
 * Which request a refused submit was, across its retries: the idempotency key when it has
 * one, else the request itself. Two identical requests of one tenant count once; the
 * scaler needs to know that demand exists, and the queue counts every job once it is in.
 */
export function demandFingerprint(tenant: string, request: JobRequest): string {
  const what = request.idempotency_key !== undefined ? `key\0${request.idempotency_key}` : `request\0${JSON.stringify(request)}`;
  return createHash('sha256').update(`${tenant}\0${what}`).digest('base64url').slice(0, 22);
}

/** One model's backlog: jobs no GPU is generating for yet, and refused demand. */
export interface ModelBacklog {
  model: string;
  /** What a scaler scales on: the sum of the five below. */
  backlog: number;
  /** In BullMQ's `wait` list (the only part KEDA's redis list scaler would see). */
  waiting: number;
  /** In BullMQ's prioritized sorted set: where Switchyard's jobs wait (every job has a priority). */
  prioritized: number;
  /** In BullMQ's delayed set (a retry waiting out its backoff). */
  delayed: number;
  /** Claimed by an agent that is still loading the model for them (record status `loading`). */
  loading: number;
  /** Submits refused `503 no_capacity` within UNSERVED_DEMAND_SECONDS while no agent serves the model. */
  unserved: number;
  /** Ready agents that have the model on disk. */
  agents: number;
  /** The fleet catalog has an entry for it (not one being removed). */
  in_catalog: boolean;
}

export interface BacklogDeps {
  redis: RedisConnection;
  keys: Pick<AdmissionKeys, 'seenModels'>;
  queues: QueueRegistry;
  records: JobRecords;
  fleet: FleetView;
  catalog: Pick<ModelCatalogStore, 'list'>;
  unserved: UnservedDemand;
  /** A model an agent listed within this long is one the backlog knows (CAPACITY_MEMORY_SECONDS). */
  capacityMemoryMs: number;
}

/**
 * The backlog per model, the number a scaler of GPU workers needs: jobs waiting in any of
 * BullMQ's waiting structures, jobs claimed but still waiting for their model to load, and
 * refused demand while no agent serves the model. Every API replica reads the same Redis and
 * answers the same numbers.
 */
export class Backlog {
  constructor(private readonly deps: BacklogDeps) {}

  /**
   * Every model the backlog knows: with a queue (any replica's), in the catalog, or listed
   * by an agent within the capacity memory. `only` reads one model (the per-model
   * endpoint); undefined when it is none of those.
   */
  async read(only?: string): Promise<ModelBacklog[]> {
    const { deps } = this;
    const now = Date.now();
    // Queues other replicas created are in the known-models set; one SMEMBERS finds them.
    await deps.queues.discover();
    const [catalog, seen, servable] = await Promise.all([deps.catalog.list(), deps.redis.hgetall(deps.keys.seenModels), deps.fleet.servableModels()]);
    const inCatalog = new Set(catalog.filter((entry) => entry.removing !== true).map((entry) => entry.name));
    const queues = queuesByModel(deps.queues.opened().keys());
    const names = new Set<string>([...queues.keys(), ...inCatalog, ...servable.keys()]);
    for (const [model, at] of Object.entries(seen)) if (now - Number(at) < deps.capacityMemoryMs) names.add(model);
    const models = [...names].filter((model) => only === undefined || model === only).sort();
    const unserved = await deps.unserved.counts(models, now);
    return Promise.all(
      models.map(async (model) => {
        const agents = servable.get(model)?.agents.length ?? 0;
        const figures = await Promise.all((queues.get(model) ?? []).map((queue) => this.queueFigures(queue.queueKey)));
        const sum = (field: 'waiting' | 'prioritized' | 'delayed' | 'loading') => figures.reduce((total, figure) => total + figure[field], 0);
        const entry = {
          waiting: sum('waiting'),
          prioritized: sum('prioritized'),
          delayed: sum('delayed'),
          loading: sum('loading'),
          // Once an agent serves the model, submits are admitted and counted in its queue:
          // refused demand from before would count twice.
          unserved: agents > 0 ? 0 : (unserved.get(model) ?? 0),
        };
        const backlog = entry.waiting + entry.prioritized + entry.delayed + entry.loading + entry.unserved;
        return { model, backlog, ...entry, agents, in_catalog: inCatalog.has(model) };
      }),
    );
  }

  private async queueFigures(queueKey: string): Promise<{ waiting: number; prioritized: number; delayed: number; loading: number }> {
    const queue = this.deps.queues.get(queueKey);
    const [counts, active] = await Promise.all([queue.getJobCounts('waiting', 'prioritized', 'delayed'), queue.getRanges(['active'], 0, -1)]);
    // Active jobs are claimed; those whose record still says `loading` wait for a model load.
    const statuses = active.length === 0 ? [] : await this.deps.records.statuses(active);
    return {
      waiting: counts.waiting ?? 0,
      prioritized: counts.prioritized ?? 0,
      delayed: counts.delayed ?? 0,
      loading: statuses.filter((status) => status === 'loading').length,
    };
  }
}

/**
 * `switchyard_backlog{model}`, read at scrape time. Unlike `switchyard_queue_depth` (BullMQ's
 * waiting and active counts) it is what a scaler wants: jobs still waiting for a GPU,
 * claimed jobs still loading, and refused demand while no agent serves the model. Every
 * replica reports the same fleet-wide value: aggregate with `max`, not `sum`.
 */
export function registerBacklogMetrics(registry: Registry, backlog: Pick<Backlog, 'read'>): void {
  new Gauge({
    name: 'switchyard_backlog',
    help: 'Jobs per model waiting for a GPU (waiting, prioritized, delayed), claimed but still loading, and submits refused 503 no_capacity lately while no agent serves the model: what to scale GPU workers on (same fleet-wide value on every replica: aggregate with max)',
    labelNames: ['model'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const row of await backlog.read()) this.set({ model: row.model }, row.backlog);
    },
  });
}
