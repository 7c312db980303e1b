import type { Logger } from 'pino';
import { BackendError, type Backend } from '@switchyard/backends';
import { splitQueueModel, type AgentHeartbeat, type LoadProgress } from '@switchyard/protocol';
import type { QueueRegistry } from '@switchyard/redis';
import type { DemandTracker } from './demand-tracker.js';
import type { FleetState } from './fleet-state.js';
import { DEFAULT_SERVICE_MS, type ModelInventory, type ModelState } from './model-inventory.js';
import {
  displacementPays,
  isEvictable,
  needsAnotherCopy,
  planEvictions,
  shouldRefill,
  shouldSpread,
  shouldUnload,
  type PlacementTuning,
  type ResidentModel,
  type WaitingModel,
} from './placement-policy.js';
import { readWaitStats, type WaitStats } from './queue-stats.js';
import type { LifecycleMetrics } from './agent-metrics.js';
import { WorkAnnouncements } from './work-announcements.js';

export interface LifecycleOptions {
  agentId: string;
  backend: Backend;
  inventory: ModelInventory;
  fleet: FleetState;
  queues: QueueRegistry;
  demand: DemandTracker;
  logger: Logger;
  tuning: PlacementTuning;
  /** Unit of a waiting model's aging when it would evict idle models: see AgentConfig.displacementAgingMs. */
  displacementAgingMs: number;
  /** Starvation guard: see AgentConfig.drainForColdAfterMs. */
  drainForColdAfterMs: number;
  drainTimeoutMs: number;
  minExpectedLoadMs: number;
  unfitCooldownMs: number;
  /** Total VRAM of the node (all GPUs). */
  vramTotalBytes: number;
  parallelPerCopy: number;
  /**
   * Jobs this agent runs at once (AGENT_SLOTS): a copy added before its queue forms needs a
   * copy's worth of them idle here. Without it, slots do not limit those copies.
   */
  slots?: number;
  pinned: string[];
  keepAlive: string | number;
  initialLoadBytesPerS: number;
  /** The queue keys (plain and digest-pinned) that feed each model. */
  queueKeys: (model: string) => string[];
  /** Jobs of a model claimed here and not settled (ahead of the inventory's own count). */
  runningOf: (model: string) => number;
  /** Called when a model became warm here, so the scheduler claims its jobs at once. */
  onWarm: (model: string) => void;
  /** Called before a lease is released, so peers see the new copy first. */
  publishHeartbeat: () => Promise<void>;
  /**
   * How often every cold model's queues are read, not only those announced since they were
   * last seen empty: the bound on how late work nobody announced (a retried job, a stalled
   * one put back) is noticed.
   */
  fullScanMs: number;
  /** Counts loads, unloads, warm-lease waits and round times (agent-metrics.ts). */
  metrics?: LifecycleMetrics;
  /**
   * The clock decisions are made by (idleness, residency, drain timeout, unfit cooldown, how
   * long jobs have waited); Date.now unless a test drives time itself. A load's duration is
   * measured on the real clock: it is the throughput of a real load.
   */
  now?: () => number;
  /** The clock a load's duration is measured by: Date.now unless a test pins how long a load took. */
  loadClock?: () => number;
}

/** Extra time a warm lease lives beyond three expected loads (a slow disk, a busy node). */
const LEASE_PADDING_MS = 10_000;

/**
 * Owns model lifecycle on this node: which model to warm (load) next and what to evict
 * for it, which idle models to unload, and the pinned models. The pull scheduler claims
 * jobs only for models warm here, so "pull a cold model" is "warm it, then pull": the job
 * waits in Redis during the load, where a node that gets warm sooner can still take it.
 */
export class LifecycleManager {
  private loading: { model: string; reserveBytes: number } | undefined;
  /** When the running warm began and how long it should take (the heartbeat's `loads_in_progress`). */
  private loadStarted: { model: string; startedAt: number; expectedMs: number } | undefined;
  /** Making room for a starving cold model; its victims are in `closedForClaims` until it is loaded. */
  private draining: { model: ModelState; since: number; reason: string } | undefined;
  private ticking = false;
  private timer: NodeJS.Timeout | undefined;
  /** Disk → VRAM throughput measured here; undefined until the first load (then the fleet's, then the configured prior, stand in). */
  private measuredBytesPerS: number | undefined;
  /** `model@digest` → how long its loads took here (ms): the first one replaces any estimate. */
  private readonly measuredLoadMs = new Map<string, number>();
  private readonly unfitUntil = new Map<string, number>();
  /**
   * Victims of the load being prepared or of a drain: closed to new jobs from the moment
   * they are chosen until the load ends, so none of them turns busy before its eviction.
   */
  private readonly closedForClaims = new Set<string>();
  /**
   * Models loaded here on speculation (no job waited for them): by a refill, or as a copy for
   * demand before its queue formed (`spread`); see `ResidentModel.speculative`.
   */
  private readonly speculativeLoads = new Map<string, 'refill' | 'spread'>();
  /** A round was asked for while one ran: run another right after, so an announcement is not dropped. */
  private tickAgain = false;
  private currentRound: Promise<void> | undefined;
  /** Which cold models' queues the next round reads. */
  private readonly announcements: WorkAnnouncements;
  private stopped = false;
  private readonly now: () => number;

  constructor(private readonly options: LifecycleOptions) {
    this.now = options.now ?? Date.now;
    this.announcements = new WorkAnnouncements(options.fullScanMs);
  }

  get loadingModel(): string | undefined {
    return this.loading?.model;
  }

  /** The warm under way, from its first eviction; wall-clock, like the load time it is measured against. */
  loadProgress(): LoadProgress | undefined {
    const started = this.loadStarted;
    if (!started || started.model !== this.loading?.model) return undefined;
    return { model: started.model, started_at: started.startedAt, expected_ms: Math.round(started.expectedMs) };
  }

  /**
   * True while `model` is about to be evicted here (chosen as a victim of a load or of a
   * drain): claim none of its jobs, or the eviction would find it busy.
   */
  isDraining(model: string): boolean {
    return this.closedForClaims.has(model);
  }

  /** Disk → VRAM throughput measured here, for the heartbeat (peers estimate with it). */
  measuredLoadBytesPerS(): number | undefined {
    return this.measuredBytesPerS;
  }

  /** The load throughput expected here: measured here, else as live peers measured theirs, else the configured prior. */
  private loadBytesPerS(): number {
    return this.measuredBytesPerS ?? this.options.fleet.peerLoadBytesPerS() ?? this.options.initialLoadBytesPerS;
  }

  private leaseTtlMs(model: ModelState): number {
    return this.expectedLoadMs(model) * 3 + LEASE_PADDING_MS;
  }

  start(intervalMs: number): void {
    this.timer = setInterval(() => void this.tick(), intervalMs);
    this.timer.unref();
    void this.tick();
  }

  /** New work was announced for `model`: read its queues in the next rounds, and run one now if it is not warm here. */
  workAnnounced(model: string): void {
    this.announcements.announce(model);
    if (!this.options.inventory.isLoaded(model)) void this.tick();
  }

  /** Stops the rounds; resolves once the one under way (if any) has ended. A load it started goes on. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.currentRound;
  }

  /** VRAM need of a model here: measured anywhere in the fleet, else estimated. */
  needBytes(model: ModelState): { bytes: number; source: 'measured' | 'estimate' } {
    const measured = this.options.fleet.measuredVram(model.name, model.digest);
    return measured !== undefined ? { bytes: measured, source: 'measured' } : { bytes: model.estimateBytes, source: 'estimate' };
  }

  usedBytes(): number {
    let used = this.loading?.reserveBytes ?? 0;
    for (const model of this.options.inventory.all()) if (model.loaded) used += model.loaded.vramBytes;
    return used;
  }

  /**
   * How long loading this model is expected to take here: as its loads here took, else from
   * the throughput (see `loadBytesPerS`). Never below `minExpectedLoadMs`: a job's wait also
   * includes claim latency and heartbeat staleness, which must not read as "the copies
   * cannot keep up".
   */
  expectedLoadMs(model: ModelState): number {
    const measured = this.measuredLoadMs.get(`${model.name}@${model.digest}`);
    return Math.max(this.options.minExpectedLoadMs, measured ?? (model.sizeBytes / this.loadBytesPerS()) * 1000);
  }

  /**
   * Learns from a load that took `elapsedMs`: the first measurement (of the node's
   * throughput, and of this model's load time) replaces the prior at once, later ones are
   * averaged in half and half. Moving 30 % toward each measurement left the agent expecting
   * 0.8 s for loads of 0.24 s for a whole run, and `queue_too_old` waited for that (issue 17).
   */
  private learnLoad(model: ModelState, elapsedMs: number): void {
    const key = `${model.name}@${model.digest}`;
    const blend = (prior: number | undefined, sample: number) => (prior === undefined ? sample : (prior + sample) / 2);
    this.measuredLoadMs.set(key, blend(this.measuredLoadMs.get(key), elapsedMs));
    if (model.sizeBytes > 0) this.measuredBytesPerS = blend(this.measuredBytesPerS, model.sizeBytes / (elapsedMs / 1000));
  }

  /**
   * How long a job of this model holds a slot: measured here if it ran here, else as the warm
   * copies report it. A node that never ran the model must not judge the copies' capacity by
   * a default (5 s against a real 0.3 s made every small model look overloaded: bench:fleet
   * saw five speculative copies of qwen2.5:0.5b within ten seconds).
   */
  private serviceMsOf(model: ModelState, copies: readonly AgentHeartbeat[]): number {
    return this.measuredServiceMs(model, copies) ?? DEFAULT_SERVICE_MS;
  }

  /** The service time measured here or reported by a copy; undefined until a job of the model has finished somewhere. */
  private measuredServiceMs(model: ModelState, copies: readonly AgentHeartbeat[]): number | undefined {
    if (model.serviceMs !== undefined) return model.serviceMs;
    const reported = copies.map((agent) => agent.models_loaded.find((loaded) => loaded.name === model.name)?.service_ms).filter((ms): ms is number => ms !== undefined);
    return reported.length > 0 ? reported.reduce((sum, ms) => sum + ms, 0) / reported.length : undefined;
  }

  private resident(model: ModelState): ResidentModel {
    return {
      name: model.name,
      vramBytes: model.loaded?.vramBytes ?? 0,
      inFlight: Math.max(model.inFlight, this.options.runningOf(model.name)),
      loadedAt: model.loaded?.loadedAt ?? 0,
      lastUsedAt: Math.max(model.lastUsedAt, model.loaded?.loadedAt ?? 0),
      pinned: this.options.pinned.includes(model.name),
      demandPerS: this.demandShare(model),
      reloadMs: this.expectedLoadMs(model),
      speculative: this.isSpeculative(model),
      rehomable: model.loaded !== undefined && this.options.fleet.roomElsewhere(model.name, model.digest, model.loaded.vramBytes).length > 0,
    };
  }

  /**
   * Whether a resident model is still a guess: a refill nobody has used since, or a copy
   * added for demand while another copy exists (the others serve its requests if it goes).
   */
  private isSpeculative(model: ModelState): boolean {
    const kind = this.speculativeLoads.get(model.name);
    if (kind === 'refill') return model.lastUsedAt < (model.loaded?.loadedAt ?? 0);
    if (kind === 'spread') return this.options.fleet.copiesElsewhere(model.name).length > 0;
    return false;
  }

  /** One decision round; rounds never overlap (one asked for meanwhile runs right after). */
  async tick(): Promise<void> {
    if (this.stopped) return;
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.currentRound = this.round();
    await this.currentRound;
  }

  private async round(): Promise<void> {
    this.ticking = true;
    const roundEnded = this.options.metrics?.placementRound();
    try {
      await this.options.fleet.refresh();
      await this.shareMeasurements();
      await this.unloadIdle();
      if (this.draining) await this.continueDrain();
      else if (!this.loading) await this.warmNext();
    } catch (error) {
      this.options.logger.warn({ err: error }, 'placement round failed');
    } finally {
      this.ticking = false;
      roundEnded?.();
      if (this.tickAgain && !this.stopped) {
        this.tickAgain = false;
        void this.tick();
      }
    }
  }

  private async shareMeasurements(): Promise<void> {
    for (const model of this.options.inventory.all()) {
      if (model.loaded?.measured && model.loaded.vramBytes > 0) {
        await this.options.fleet.recordMeasuredVram(model.name, model.digest, model.loaded.vramBytes).catch(() => undefined);
      }
    }
  }

  /**
   * Whether a model cold here, asked for lately (or with jobs announced), would not fit in the
   * VRAM free here now: only then is an idle extra copy's VRAM wanted. With VRAM to spare an
   * idle extra copy costs nothing, and dropping it made the next burst of a bursty model
   * queue on the copies left (bench:trace: the code model lost two of three copies between
   * its bursts).
   */
  private vramWantedHere(now: number, free = Math.max(0, this.options.vramTotalBytes - this.usedBytes()), except?: string): boolean {
    const recentMs = Math.min(this.options.tuning.recencyTauMs, this.options.tuning.idleUnloadMs);
    return this.options.inventory.all().some((model) => {
      if (model.loaded || model.name === except) return false;
      const need = this.needBytes(model).bytes;
      if (need <= free || need > this.options.vramTotalBytes) return false;
      const lastArrivalAt = this.options.demand.lastArrivalAt(model.name);
      return lastArrivalAt !== undefined && now - lastArrivalAt <= recentMs;
    });
  }

  private async unloadIdle(): Promise<void> {
    const now = this.now();
    let vramWanted: boolean | undefined;
    for (const model of this.options.inventory.all()) {
      if (!model.loaded || model.name === this.loading?.model) continue;
      // An extra copy goes only when its VRAM is wanted here; the idle rule applies regardless.
      const keeperElsewhere =
        this.options.fleet.copiesElsewhere(model.name).some((agent) => agent.id < this.options.agentId) && (vramWanted ??= this.vramWantedHere(Date.now()));
      const resident = this.resident(model);
      const decision = shouldUnload(resident, now, this.options.tuning, keeperElsewhere);
      if (decision.unload) {
        await this.unload(model, decision.reason, { idle_ms: now - resident.lastUsedAt, copies_elsewhere: this.options.fleet.copiesElsewhere(model.name).length });
      }
    }
  }

  /** `why` says what the decision weighed, for the log line (issue 17: every copy dropped says why). */
  private async unload(model: ModelState, reason: string, why: Record<string, unknown> = {}): Promise<void> {
    this.options.logger.info(
      { model: model.name, reason, vram_bytes: model.loaded?.vramBytes, speculative: this.speculativeLoads.get(model.name), ...why },
      'unloading model',
    );
    this.options.inventory.markUnloaded(model.name);
    this.options.metrics?.modelUnloaded(model.name, reason);
    this.speculativeLoads.delete(model.name);
    try {
      await this.options.backend.unload(model.backendName);
    } catch (error) {
      this.options.logger.warn({ err: error, model: model.name }, 'unload failed; the next refresh will show what is resident');
    }
  }

  private async warmNext(): Promise<void> {
    const { inventory, fleet, tuning } = this.options;
    const now = this.now();
    const cold = inventory.all().filter((model) => !model.loaded && (this.unfitUntil.get(model.name) ?? 0) <= now);
    const fitting = cold.filter((model) => this.needBytes(model).bytes <= this.options.vramTotalBytes);
    if (fitting.length === 0) return;

    const pinned = fitting.filter((model) => this.options.pinned.includes(model.name));
    const stats = await this.readWaitingWork(fitting, now);
    // `holders`: agents that may load the model at once for this reason (the warm lease's slots; one unless said).
    const candidates: Array<{ model: ModelState; reason: string; oldestWaitMs: number; waiting: number; holders?: number; why?: Record<string, unknown> }> = [];
    const refills: Array<{ model: ModelState; lastArrivalAt: number }> = [];
    const spreads: Array<{ model: ModelState; arrivalPerS: number; holders: number; why: Record<string, unknown> }> = [];
    const freeSlotsHere = this.freeSlots();
    for (const model of pinned) candidates.push({ model, reason: 'pinned', oldestWaitMs: Number.MAX_SAFE_INTEGER, waiting: 0 });
    // A rollout's new build where this node's old build (its rollout copy, `<model>@<digest>`)
    // is warm: loaded before the rollout sends it traffic, so the switch costs no cold load
    // (the API opens the rollout's gate only once these loads are done).
    const successors = fitting.filter(
      (model) =>
        !pinned.includes(model) &&
        inventory.all().some((other) => other.loaded !== undefined && splitQueueModel(other.name).digest !== undefined && splitQueueModel(other.name).model === model.name),
    );
    for (const model of successors) candidates.push({ model, reason: 'rollout', oldestWaitMs: Number.MAX_SAFE_INTEGER - 1, waiting: 0 });
    for (const model of fitting) {
      if (pinned.includes(model) || successors.includes(model)) continue;
      const wait = stats.get(model.name) ?? { waiting: 0, oldestWaitMs: 0 };
      // Only copies of the same build count: a job pinned to this digest cannot run on another.
      const copies = fleet.copiesElsewhere(model.name, model.digest);
      const freeSlotsOnCopies = copies.reduce((sum, agent) => {
        const loaded = agent.models_loaded.find((entry) => entry.name === model.name);
        return sum + Math.max(0, Math.min(this.options.parallelPerCopy - (loaded?.in_flight ?? 0), agent.slots - agent.in_flight));
      }, 0);
      const arrivalPerS = this.arrivalPerS(model.name);
      const serviceMs = this.serviceMsOf(model, copies);
      const loadingCopies = fleet.loadingElsewhere(model.name);
      const decision = needsAnotherCopy({
        copies: copies.length,
        freeSlotsOnCopies,
        loadingCopies,
        waiting: wait.waiting,
        oldestWaitMs: wait.oldestWaitMs,
        expectedLoadMs: this.expectedLoadMs(model),
        serviceMs,
        parallelPerCopy: this.options.parallelPerCopy,
      });
      const why = {
        copies_elsewhere: copies.length,
        loading_elsewhere: loadingCopies,
        free_slots_on_copies: freeSlotsOnCopies,
        waiting: wait.waiting,
        oldest_wait_ms: wait.oldestWaitMs,
        expected_load_ms: Math.round(this.expectedLoadMs(model)),
        arrival_per_s: Number(arrivalPerS.toFixed(2)),
        service_ms: Math.round(serviceMs),
      };
      if (decision.warm) {
        candidates.push({ model, reason: decision.reason, oldestWaitMs: wait.oldestWaitMs, waiting: wait.waiting, holders: decision.holders, why });
        continue;
      }
      // A copy for demand weighs a measured service time, or else the jobs its copies run: not
      // the default (5 s), which read one request to a copy whose first 12 ms job had not
      // finished as 5 busy slots. The queue rules above still use the default.
      const inFlightOnCopies = copies.reduce((sum, agent) => sum + (agent.models_loaded.find((entry) => entry.name === model.name)?.in_flight ?? 0), 0);
      const measuredServiceMs = this.measuredServiceMs(model, copies);
      const spread = shouldSpread({
        copies: copies.length,
        loadingCopies,
        arrivalPerS,
        serviceMs: measuredServiceMs,
        inFlightOnCopies,
        parallelPerCopy: this.options.parallelPerCopy,
        freeSlotsHere,
      });
      if (spread.spread) {
        spreads.push({
          model,
          arrivalPerS,
          holders: spread.holders,
          why: {
            ...why,
            service_measured: measuredServiceMs !== undefined,
            copies_wanted: spread.wanted,
            busy_slots: Number(spread.busySlots.toFixed(2)),
            free_slots_here: freeSlotsHere,
          },
        });
        continue;
      }
      const lastArrivalAt = this.options.demand.lastArrivalAt(model.name);
      const refill = shouldRefill({
        copies: copies.length,
        beingWarmed: loadingCopies > 0,
        lastArrivalAt,
        now,
        // Never a model idle long enough to be unloaded for idleness: that one is not missed.
        recentMs: Math.min(tuning.recencyTauMs, tuning.idleUnloadMs),
      });
      if (refill) refills.push({ model, lastArrivalAt: lastArrivalAt ?? 0 });
    }
    candidates.sort((a, b) => b.oldestWaitMs - a.oldestWaitMs || b.waiting - a.waiting);
    // After every model with waiting jobs: the one asked for last first.
    refills.sort((a, b) => b.lastArrivalAt - a.lastArrivalAt);
    for (const { model } of refills) candidates.push({ model, reason: 'refill', oldestWaitMs: 0, waiting: 0 });
    // Then copies for demand before its queue forms, the model asked for fastest first.
    spreads.sort((a, b) => b.arrivalPerS - a.arrivalPerS);
    for (const { model, holders, why } of spreads) candidates.push({ model, reason: 'demand_rising', oldestWaitMs: 0, waiting: 0, holders, why });

    const residents = inventory
      .all()
      .filter((model) => model.loaded)
      .map((model) => this.resident(model));
    // Nothing is loading (or this round would not run), so the free VRAM holds for every candidate.
    const free = Math.max(0, this.options.vramTotalBytes - this.usedBytes());
    for (const candidate of candidates) {
      const need = this.needBytes(candidate.model).bytes;
      // A copy for rising demand is speculative (no job waits for it): free VRAM only.
      const speculative = candidate.reason === 'demand_rising' || candidate.reason === 'refill';
      const plan = planEvictions(need, free, residents, now, tuning, speculative ? { evictable: () => false } : {});
      if (!plan.ok) {
        this.options.logger.debug({ model: candidate.model.name, reason: plan.reason }, 'cannot warm here now');
        if (candidate.oldestWaitMs >= this.options.drainForColdAfterMs && candidate.reason !== 'pinned') {
          if (await this.startDrain(candidate.model, need, free, residents, now, candidate)) return;
        }
        continue;
      }
      const isPinned = candidate.reason === 'pinned';
      const holdBack = isPinned || plan.evict.length === 0 ? undefined : this.reasonNotToEvict(candidate, plan.evict, need, residents, now);
      if (holdBack) {
        this.options.logger.debug({ model: candidate.model.name, victims: plan.evict }, holdBack);
        continue;
      }
      // Close the victims to new jobs now: a claim during the lease round trip would make
      // them busy and the eviction impossible (seen in bench:fleet as repeated failed warms).
      for (const name of plan.evict) this.closedForClaims.add(name);
      // A load beside another one goes into free VRAM only, and only VRAM nothing else asked for
      // lately would want: evicting for it would trade a warm model for a copy that arrives with
      // the one already loading, and on scarce VRAM such copies cost bench:fleet 3 points of warm
      // share (they held the room of models asked for again soon).
      const sideBySide = plan.evict.length === 0 && !this.vramWantedHere(now, free - need, candidate.model.name);
      const holders = sideBySide ? (candidate.holders ?? 1) : 1;
      const leaseSlot = isPinned ? undefined : await fleet.acquireWarmLease(candidate.model.name, this.leaseTtlMs(candidate.model), holders);
      if (!isPinned && leaseSlot === undefined) {
        this.options.metrics?.leaseHeld(candidate.model.name);
        this.closedForClaims.clear();
        continue;
      }
      if (candidate.reason === 'no_copy' || candidate.reason === 'refill') {
        // The previous holder publishes its heartbeat before releasing the lease, so a fresh
        // read shows a copy it just made; our cached view may predate it.
        await fleet.refresh(true);
        if (fleet.copiesElsewhere(candidate.model.name, candidate.model.digest).length > 0) {
          this.closedForClaims.clear();
          await fleet.releaseWarmLease(candidate.model.name, leaseSlot);
          continue;
        }
      }
      this.loading = { model: candidate.model.name, reserveBytes: need };
      const why = leaseSlot !== undefined && holders > 1 ? { ...candidate.why, loaders_allowed: holders, lease_slot: leaseSlot } : candidate.why;
      void this.warm(candidate.model, plan.evict, candidate.reason, leaseSlot, why);
      return;
    }
  }

  /** Waiting work of the models that may have some (see WorkAnnouncements); a model not read has none as far as this round knows. */
  private async readWaitingWork(models: readonly ModelState[], now: number): Promise<Map<string, WaitStats>> {
    const plan = this.announcements.plan(models.map((model) => model.name));
    if (plan.models.length === 0) return new Map();
    const stats = await readWaitStats(this.options.queues, new Map(plan.models.map((name) => [name, this.options.queueKeys(name)])), now);
    this.announcements.settle(
      plan,
      (name) => stats.get(name)?.waiting ?? 0,
      (name) => this.options.inventory.get(name) !== undefined,
    );
    return stats;
  }

  /**
   * Why this node should not (yet) evict `victims` to warm a waiting model, if it should not:
   * a peer that can load it into free VRAM will (it runs this same round), so evicting here
   * would throw away a warm model for nothing — until the job has waited a load time; or
   * the model is not worth what it would displace (see `displacementPays`).
   */
  private reasonNotToEvict(
    candidate: { model: ModelState; waiting: number; oldestWaitMs: number },
    victims: string[],
    need: number,
    residents: ResidentModel[],
    now: number,
  ): string | undefined {
    const { model } = candidate;
    if (candidate.oldestWaitMs < this.expectedLoadMs(model) && this.options.fleet.roomElsewhere(model.name, model.digest, need).length > 0) {
      return 'leaving it to a node with free VRAM';
    }
    const displaced = residents.filter((resident) => victims.includes(resident.name));
    if (!displacementPays(this.waitingModel(model, candidate), displaced, now, this.options.tuning, this.options.displacementAgingMs).pays) {
      return 'not yet worth the idle models it would evict here';
    }
    return undefined;
  }

  /** A model jobs wait for, as `displacementPays` weighs it: this copy's share of the demand, as `resident` counts a copy. */
  private waitingModel(model: ModelState, queue: { waiting: number; oldestWaitMs: number }): WaitingModel {
    return { waiting: queue.waiting, oldestWaitMs: queue.oldestWaitMs, demandPerS: this.demandShare(model), reloadMs: this.expectedLoadMs(model) };
  }

  /**
   * How fast a model is asked for now: the higher of the demand window's rate and the recent
   * (burst) rate, so a burst is answered within a second or two rather than once it has moved
   * the 30 s average.
   */
  private arrivalPerS(model: string): number {
    return Math.max(this.options.demand.ratePerS(model), this.options.demand.burstRatePerS(model));
  }

  /** Slots of this agent neither running nor claiming a job, when its slots are known. */
  private freeSlots(): number {
    if (this.options.slots === undefined) return Number.MAX_SAFE_INTEGER;
    const running = this.options.inventory.all().reduce((sum, model) => sum + this.options.runningOf(model.name), 0);
    return Math.max(0, this.options.slots - running);
  }

  /**
   * Each copy serves its share of the fleet's demand: an extra copy is worth less than the
   * only one, which takes every request for the model with it when it goes.
   */
  private demandShare(model: ModelState): number {
    return this.options.demand.ratePerS(model.name) / (1 + this.options.fleet.copiesElsewhere(model.name).length);
  }

  /**
   * Starvation guard: a cold model has waited `drainForColdAfterMs` and would fit here if
   * some busy or freshly loaded models went. Any model but a pinned one may be picked: a
   * job starving for that long outweighs the anti-thrash
   * residency, and without this a busy node that keeps warming smaller models never has
   * enough old idle VRAM for a big one (seen in bench:fleet: llama3:70b waited 800 s). Take
   * the warm lease so no other node drains for the same model, and stop claiming the
   * victims' jobs; `continueDrain` evicts them once their running jobs are done.
   */
  private async startDrain(
    model: ModelState,
    need: number,
    free: number,
    residents: ResidentModel[],
    now: number,
    queue: { waiting: number; oldestWaitMs: number },
  ): Promise<boolean> {
    const waitedMs = queue.oldestWaitMs;
    const plan = planEvictions(need, free, residents, now, this.options.tuning, { evictable: (resident) => !resident.pinned });
    if (!plan.ok || plan.evict.length === 0) return false;
    const victims = residents.filter((resident) => plan.evict.includes(resident.name));
    const { pays, ...weighed } = displacementPays(this.waitingModel(model, queue), victims, now, this.options.tuning, this.options.drainForColdAfterMs);
    if (!pays) {
      this.options.logger.debug(
        { model: model.name, victims: plan.evict, waited_ms: waitedMs, ...weighed },
        'starving, but not yet worth the models a drain would evict here',
      );
      return false;
    }
    const ttl = this.options.drainTimeoutMs + this.leaseTtlMs(model);
    if ((await this.options.fleet.acquireWarmLease(model.name, ttl)) === undefined) {
      this.options.metrics?.leaseHeld(model.name);
      return false;
    }
    for (const name of plan.evict) this.closedForClaims.add(name);
    this.draining = { model, since: now, reason: `starving ${Math.round(waitedMs / 1000)} s` };
    this.options.logger.info(
      { model: model.name, victims: plan.evict, waited_ms: waitedMs, waiting: queue.waiting, ...weighed },
      'draining models to make room for a starving one',
    );
    return true;
  }

  private async continueDrain(): Promise<void> {
    const drain = this.draining!;
    // Drained and loading: warm() ends the drain.
    if (this.loading?.model === drain.model.name) return;
    const { inventory, logger } = this.options;
    const busy = [...this.closedForClaims].filter((name) => {
      const victim = inventory.get(name);
      return victim?.loaded && (victim.inFlight > 0 || this.options.runningOf(name) > 0);
    });
    if (busy.length > 0) {
      if (this.now() - drain.since > this.options.drainTimeoutMs) {
        logger.warn({ model: drain.model.name, still_busy: busy }, 'drain timed out; giving up');
        await this.abandonDrain(drain.model.name);
      }
      return;
    }
    const need = this.needBytes(drain.model).bytes;
    const free = Math.max(0, this.options.vramTotalBytes - this.usedBytes());
    const residents = inventory
      .all()
      .filter((model) => model.loaded)
      .map((model) => this.resident(model));
    const now = this.now();
    // The victims chosen at the start may still be younger than the minimum residency.
    const evictable = (resident: ResidentModel) =>
      isEvictable(resident, now, this.options.tuning) || (this.closedForClaims.has(resident.name) && !resident.pinned && resident.inFlight === 0);
    const plan = planEvictions(need, free, residents, now, this.options.tuning, { evictable });
    if (!plan.ok) {
      logger.warn({ model: drain.model.name, reason: plan.reason }, 'drained, yet the model still does not fit');
      await this.abandonDrain(drain.model.name);
      return;
    }
    // The victims stay closed to new jobs until the load is done (warm() clears the drain),
    // so none of them can turn busy between one eviction and the next.
    this.loading = { model: drain.model.name, reserveBytes: need };
    void this.warm(drain.model, plan.evict, drain.reason, 0);
  }

  private async abandonDrain(model: string): Promise<void> {
    this.draining = undefined;
    this.closedForClaims.clear();
    await this.options.fleet.releaseWarmLease(model).catch(() => undefined);
  }

  /** `leaseSlot`: the warm lease slot this load holds (none for a pinned model's). */
  private async warm(model: ModelState, evict: string[], reason: string, leaseSlot: number | undefined, why: Record<string, unknown> = {}): Promise<void> {
    const { inventory, backend, logger } = this.options;
    const log = logger.child({ model: model.name });
    // Whether this copy is a guess is a property of this load, not of the model's history.
    if (reason === 'refill') this.speculativeLoads.set(model.name, 'refill');
    else if (reason === 'demand_rising') this.speculativeLoads.set(model.name, 'spread');
    else this.speculativeLoads.delete(model.name);
    this.loadStarted = { model: model.name, startedAt: Date.now(), expectedMs: this.expectedLoadMs(model) };
    try {
      for (const name of evict) {
        const victim = inventory.get(name);
        // Re-check: a job may have started on it since the plan was made.
        if (!victim?.loaded || victim.inFlight > 0 || this.options.runningOf(name) > 0) throw new Error(`eviction of ${name} no longer possible`);
        await this.unload(victim, `evicted for ${model.name}`);
      }
      log.info({ reason, evict, need_bytes: this.loading?.reserveBytes, ...why }, 'warming model');
      const loadClock = this.options.loadClock ?? Date.now;
      const started = loadClock();
      await backend.load(model.backendName, this.options.keepAlive);
      const elapsedMs = loadClock() - started;
      // A load that returns at once found the model resident already: it measured nothing.
      if (elapsedMs > 50) this.learnLoad(model, elapsedMs);
      inventory.markLoaded(model.name, undefined, elapsedMs);
      this.options.metrics?.modelLoaded(model.name, reason, elapsedMs / 1000);
      await inventory.refresh();
      log.info({ load_ms: elapsedMs, vram_bytes: inventory.get(model.name)?.loaded?.vramBytes }, 'model warm');
    } catch (error) {
      log.warn({ err: error }, 'could not warm model');
      this.options.metrics?.loadFailed(model.name, reason, error instanceof BackendError && error.outOfMemory);
      this.speculativeLoads.delete(model.name);
      if (error instanceof BackendError && error.outOfMemory) {
        this.unfitUntil.set(model.name, this.now() + this.options.unfitCooldownMs);
      }
    } finally {
      this.loading = undefined;
      this.loadStarted = undefined;
      this.closedForClaims.clear();
      if (this.draining?.model.name === model.name) this.draining = undefined;
      if (leaseSlot !== undefined) {
        // Peers must see the new copy before the lease goes, or one of them would warm a second.
        await this.options.publishHeartbeat().catch(() => undefined);
        await this.options.fleet.releaseWarmLease(model.name, leaseSlot).catch(() => undefined);
      }
      this.options.onWarm(model.name);
    }
  }
}
