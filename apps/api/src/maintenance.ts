import { randomUUID } from 'node:crypto';
import type { RedisConnection } from '@switchyard/redis';
import type { Logger } from 'pino';
import { JobErrorCode, rolloutStatus, type RedisKeys } from '@switchyard/protocol';
import { defineScripts, type AdmissionLedger, type JobLifecycle, type ModelCatalogStore, type QueueRegistry, type StreamPresence } from '@switchyard/redis';
import type { AgentFailover } from './agent-failover.js';
import type { Admission } from './admission.js';
import type { ApiConfig } from './config.js';
import type { FleetView } from './fleet-view.js';
import type { JobService } from './job-service.js';
import type { ApiMetrics } from './metrics.js';

/** A reservation this young may belong to a submit still writing its job: reconciliation leaves it alone. */
const SETTLE_MS = 10_000;
const BATCH = 500;

export interface MaintenanceDeps {
  redis: RedisConnection;
  keys: RedisKeys;
  ledger: AdmissionLedger;
  admission: Admission;
  jobs: JobService;
  lifecycle: JobLifecycle;
  /** Puts the jobs of agents whose heartbeat lapsed back in their queues (every round). */
  failover?: AgentFailover;
  queues: QueueRegistry;
  /** Which jobs some replica streams (every replica marks its open native streams). */
  presence: Pick<StreamPresence, 'streamed'>;
  fleet: FleetView;
  /** The fleet catalog: entries being removed (`DELETE /api/delete`) go once no node holds their model. */
  catalog?: Pick<ModelCatalogStore, 'list' | 'delete' | 'setRollout'>;
  metrics: ApiMetrics;
  config: ApiConfig;
  logger: Logger;
  /**
   * The clock a round's decisions are made by (deadlines, the disconnect grace, the update
   * interval, reconciliation's settle time); Date.now unless a test drives time itself.
   */
  now?: () => number;
}

/**
 * The API's periodic work, run by one replica at a time (the holder of a Redis lock that
 * lapses within a few periods if it dies):
 * - expire queued jobs whose deadline passed (removed from the queue, never reaching a GPU);
 * - cancel jobs whose native event streams all went away and none came back within the
 *   disconnect grace (every replica marks the jobs it streams: `StreamPresence`);
 * - send `queued {position, depth, eta_s}` updates to jobs somebody streams, at most once
 *   per `queuedUpdateIntervalMs` and only when something changed;
 * - mark jobs an agent claimed (still loading) as started, feed wait samples to the metrics;
 * - reconcile admission counts with BullMQ (jobs that ended without a terminal event).
 */
export class Maintenance {
  private readonly id = randomUUID();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private lastReconcile = 0;
  private lastClaimScan = 0;
  private readonly lastUpdate = new Map<string, { at: number; position: number; eta?: number }>();

  constructor(private readonly deps: MaintenanceDeps) {
    // The lock's scripts: lua/hold-lock-1.lua takes or renews it, lua/delete-if-equal-1.lua drops it if still ours.
    defineScripts(deps.redis);
  }

  start(): void {
    this.timer = setInterval(() => {
      this.running ??= this.tick().finally(() => (this.running = undefined));
    }, this.deps.config.maintenanceIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running?.catch(() => undefined);
    await this.deps.redis.sy_delete_if_equal_v1(this.lockKey, this.id).catch(() => undefined);
  }

  private get lockKey(): string {
    return this.deps.ledger.keys.lock('maintenance');
  }

  /** One round of everything; exported for tests that drive time themselves. */
  async tick(): Promise<void> {
    const ttl = Math.max(2_000, this.deps.config.maintenanceIntervalMs * 4);
    let held = false;
    try {
      held = (await this.deps.redis.sy_hold_lock_v1(this.lockKey, this.id, String(ttl))) === 1;
    } catch {
      return; // Redis away: nothing to do until it is back.
    }
    if (!held) return;
    const now = (this.deps.now ?? Date.now)();
    const steps: Array<[string, Promise<unknown>]> = [
      ['expire', this.expireDue(now)],
      ['streams', this.streams(now)],
      ['samples', this.drainSamples()],
      ...(this.deps.failover ? [['failover', this.deps.failover.tick(now)] as [string, Promise<unknown>]] : []),
    ];
    if (now - this.lastClaimScan >= 1_000) {
      this.lastClaimScan = now;
      steps.push(['claims', this.markClaimed()]);
      steps.push(['fleet', this.deps.fleet.agents().then((agents) => this.deps.admission.noteFleet(agents))]);
      if (this.deps.catalog) steps.push(['catalog', this.retireRemoved(this.deps.catalog)]);
    }
    if (now - this.lastReconcile >= this.deps.config.reconcileIntervalMs) {
      this.lastReconcile = now;
      steps.push(['reconcile', this.reconcile(now)]);
    }
    const results = await Promise.allSettled(steps.map(([, step]) => step));
    results.forEach((result, index) => {
      if (result.status === 'rejected') this.deps.logger.warn({ err: result.reason, step: steps[index]![0] }, 'maintenance step failed');
    });
  }

  private async expireDue(now: number): Promise<void> {
    const { redis, ledger, jobs, logger } = this.deps;
    const due = await redis.zrangebyscore(ledger.keys.deadlines, '-inf', now, 'WITHSCORES', 'LIMIT', 0, BATCH);
    if (due.length === 0) return;
    const ids: string[] = [];
    const deadlines = new Map<string, number>();
    for (let i = 0; i < due.length; i += 2) {
      ids.push(due[i]!);
      deadlines.set(due[i]!, Number(due[i + 1]));
    }
    const positions = await ledger.positions(ids);
    // Deadlines this sweep is done with, removed in one command at the end.
    const settled: string[] = [];
    // allSettled: one job's failed expiry must not keep the rest of the batch's removals.
    const results = await Promise.allSettled(
      ids.map(async (jobId) => {
        const position = positions.get(jobId);
        if (!position || position.state !== 'q') {
          settled.push(jobId);
          return;
        }
        const outcome = await jobs.expire(jobId, position.model, deadlines.get(jobId) ?? now);
        if (outcome.expired) {
          logger.info({ jobId, model: position.model }, 'job expired in the queue');
          return;
        }
        // An agent holds it (it checks the deadline before starting) or its submit is still
        // writing it; either way it is no longer this sweep's to expire unless it stays queued.
        if (outcome.state !== 'unknown' || now - (deadlines.get(jobId) ?? now) > SETTLE_MS) settled.push(jobId);
      }),
    );
    if (settled.length > 0) await redis.zrem(ledger.keys.deadlines, ...settled);
    const failures = results.filter((result): result is PromiseRejectedResult => result.status === 'rejected').map((result) => result.reason);
    if (failures.length === 1) throw failures[0];
    if (failures.length > 1) throw new AggregateError(failures, `${failures.length} of ${results.length} due jobs could not be expired; they stay due for the next sweep`);
  }

  /** Disconnect grace and position updates, for jobs whose native stream was ever opened. */
  private async streams(now: number): Promise<void> {
    const { redis, ledger, presence, config } = this.deps;
    const watched = await redis.zrange(ledger.keys.watched, '0', String(BATCH - 1), 'WITHSCORES');
    if (watched.length === 0) {
      this.lastUpdate.clear();
      return;
    }
    const ids: string[] = [];
    const lastSeen = new Map<string, number>();
    for (let i = 0; i < watched.length; i += 2) {
      ids.push(watched[i]!);
      lastSeen.set(watched[i]!, Number(watched[i + 1]));
    }
    // Jobs some replica sharing this Redis streams now (their presence marks).
    const listened = await presence.streamed(ids);
    const positions = await ledger.positions(ids);

    const seen = redis.pipeline();
    const abandoned: string[] = [];
    for (const id of ids) {
      const position = positions.get(id);
      if (!position) {
        seen.zrem(ledger.keys.watched, id);
        continue;
      }
      if (listened.has(id)) {
        if (now - (lastSeen.get(id) ?? 0) >= 1_000) seen.zadd(ledger.keys.watched, 'XX', String(now), id);
      } else if (!position.detach && now - (lastSeen.get(id) ?? now) >= config.disconnectGraceMs) {
        abandoned.push(id);
        seen.zrem(ledger.keys.watched, id);
      }
    }
    await seen.exec();
    await Promise.all(
      abandoned.map(async (jobId) => {
        const cancelled = await this.deps.jobs.cancelAbandoned(jobId, 'disconnect');
        if (cancelled) this.deps.logger.info({ jobId }, 'job cancelled: its event streams went away and none came back within the grace period');
      }),
    );
    await this.sendPositions(
      now,
      [...listened].filter((id) => positions.get(id)?.rank !== undefined),
      positions,
    );
    for (const id of this.lastUpdate.keys()) if (!listened.has(id)) this.lastUpdate.delete(id);
  }

  private async sendPositions(now: number, ids: string[], positions: Awaited<ReturnType<AdmissionLedger['positions']>>): Promise<void> {
    const { admission, lifecycle, config } = this.deps;
    const due = ids.filter((id) => now - (this.lastUpdate.get(id)?.at ?? 0) >= config.queuedUpdateIntervalMs);
    if (due.length === 0) return;
    // Queue key → the positions to estimate: the ledger script estimates them with the stats.
    const ranks = new Map<string, number[]>();
    for (const id of due) {
      const position = positions.get(id)!;
      ranks.set(position.model, [...(ranks.get(position.model) ?? []), position.rank!]);
    }
    const stats = await admission.modelStats([...ranks.keys()], ranks);
    await Promise.all(
      due.map(async (id) => {
        const position = positions.get(id)!;
        const rank = position.rank!;
        const modelStats = stats.get(position.model);
        const eta = admission.etaSeconds(modelStats, rank);
        const last = this.lastUpdate.get(id);
        const changed = !last || last.position !== rank || (eta !== undefined && (last.eta === undefined || Math.abs(last.eta - eta) >= 1));
        if (!changed) return;
        this.lastUpdate.set(id, { at: now, position: rank, ...(eta !== undefined && { eta }) });
        // Refused once the job left its queue: never after an agent's claim.
        await lifecycle.position(id, { type: 'queued', position: rank, depth: modelStats?.depth ?? rank + 1, ...(eta !== undefined && { eta_s: eta }) });
      }),
    );
  }

  /**
   * Drops the catalog entries of models removed from the fleet once no live node holds them
   * any more, and stamps rollouts finished once no node holds the old build.
   */
  private async retireRemoved(catalog: NonNullable<MaintenanceDeps['catalog']>): Promise<void> {
    const entries = await catalog.list();
    const removing = entries.filter((entry) => entry.removing === true);
    const rolling = entries.filter((entry) => entry.rollout !== undefined && entry.rollout.finished_at === undefined);
    if (removing.length === 0 && rolling.length === 0) return;
    const agents = await this.deps.fleet.agents();
    for (const entry of rolling) {
      const status = rolloutStatus(entry, agents);
      if (!status || status.on_from.length > 0 || status.on_to.length === 0) continue;
      await catalog.setRollout(entry.name, { ...entry.rollout!, finished_at: Date.now() });
      this.deps.logger.info({ model: entry.name, to: status.to.slice(0, 12), aborted: status.state === 'aborted' }, 'rollout finished: no node holds the old build any more');
    }
    for (const entry of removing) {
      if (agents.some((agent) => agent.models_available.some((model) => model.name === entry.name))) continue;
      await catalog.delete(entry.name);
      this.deps.logger.info({ model: entry.name }, 'model removed from the fleet: no node holds it any more; catalog entry dropped');
    }
  }

  /** Jobs an agent claimed but has not started streaming (a cold load) leave the waiting count now, not at their first token. */
  private async markClaimed(): Promise<void> {
    const { ledger, queues } = this.deps;
    const models = [...queues.opened().keys()];
    const stats = await ledger.stats(models, 1_000, 1);
    await Promise.all(
      models
        .filter((model) => (stats.get(model)?.depth ?? 0) > 0)
        .map(async (model) => {
          const active = await queues.get(model).getRanges(['active'], 0, -1);
          if (active.length === 0) return;
          const positions = await ledger.positions(active);
          // Concurrent commands on one connection go out back to back: one flight, not one each.
          await Promise.all([...positions].filter(([, position]) => position.state === 'q').map(([jobId]) => ledger.started(jobId)));
        }),
    );
  }

  private async drainSamples(): Promise<void> {
    const { ledger, metrics } = this.deps;
    // Written by lua/start-reservation-4.lua in the layout of ledger-layout.ts, which reads them back.
    for (const { model, estimatedMs, actualMs } of await ledger.takeWaitSamples(1000)) {
      const actualS = actualMs / 1000;
      metrics.queueWait.observe({ model }, actualS);
      if (estimatedMs !== undefined) {
        metrics.queueWaitEstimated.observe({ model }, estimatedMs / 1000);
        metrics.queueWaitEstimateError.observe({ model }, actualS - estimatedMs / 1000);
      }
    }
  }

  /**
   * Admission counts against BullMQ: a reservation whose job is finished or gone is released
   * — a job BullMQ gave up on without a terminal event (its agents died past the attempt
   * budget) is ended first (`abandon`: its clients read `agent_lost`, its record says
   * failed), an API that died between reserve and enqueue left no record. Then the counters
   * are rebuilt from the reservations.
   */
  private async reconcile(now: number): Promise<void> {
    const { ledger, lifecycle, queues, metrics, logger } = this.deps;
    const reservations = await ledger.reservations();
    const models = new Set<string>(queues.opened().keys());
    await Promise.all(
      [...reservations].map(async ([jobId, reservation]) => {
        models.add(reservation.model);
        if (now - reservation.submittedAt < SETTLE_MS) return;
        const state = await queues.get(reservation.model).getJobState(jobId);
        if (state === 'completed' || state === 'failed' || state === 'unknown') {
          // Ends the job if nothing did (and releases with it); a job that ended lost only its ledger write.
          const ended = await lifecycle.abandon(jobId, {
            type: 'error',
            code: JobErrorCode.agentLost,
            message: 'the job was lost: the agents running it stopped answering and its attempts ran out',
          });
          if (ended.taken) {
            metrics.admissionRepairs.inc({ action: 'released' });
            logger.warn({ jobId, state }, 'ended a job that BullMQ gave up on without a terminal event');
          } else if (await ledger.release(jobId, 'reconciled')) {
            metrics.admissionRepairs.inc({ action: 'released' });
            logger.info({ jobId, state }, 'released the admission count of a job that ended without a terminal event');
          }
        } else if (state === 'active' && reservation.state === 'q') {
          if (await ledger.started(jobId, { sample: false })) metrics.admissionRepairs.inc({ action: 'started' });
        }
      }),
    );
    const drift = await ledger.recompute([...models]);
    if (drift > 0) {
      metrics.admissionRepairs.inc({ action: 'drift' }, drift);
      logger.warn({ drift }, 'admission counters had drifted from the reservations; rebuilt');
    }
  }
}
