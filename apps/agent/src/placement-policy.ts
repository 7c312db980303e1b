/**
 * The placement decisions of one agent, as pure functions of what it knows, so that each
 * rule can be tested on its own. The LifecycleManager gathers the inputs and acts.
 */

import { formatGB } from '@switchyard/protocol';

export interface ResidentModel {
  name: string;
  vramBytes: number;
  inFlight: number;
  loadedAt: number;
  lastUsedAt: number;
  pinned: boolean;
  /** Arrivals per second across the fleet, over the demand window. */
  demandPerS: number;
  /** How long loading it again would take (ms): requests arriving meanwhile would all be cold. */
  reloadMs: number;
  /**
   * Loaded into free VRAM on speculation (a refill) and not used since: the minimum
   * residency protects models that serve, not a guess that has not paid off yet.
   */
  speculative?: boolean;
  /**
   * A peer reports free VRAM enough for it: evicted here, it is refilled there (see
   * `shouldRefill`), and only the requests during that reload are cold.
   */
  rehomable?: boolean;
}

export interface PlacementTuning {
  minResidencyMs: number;
  /** Time constant of the recency term in a resident model's value. */
  recencyTauMs: number;
  /** Horizon over which expected arrivals count toward a resident model's value. */
  demandHorizonMs: number;
  idleUnloadMs: number;
  extraCopyIdleMs: number;
  /** Most models resident at once; 0 = only VRAM limits it. */
  maxLoaded: number;
  /** How many times the victims' value a waiting model must be worth to displace them. */
  displacementMargin: number;
}

/**
 * How much a resident model is worth keeping: roughly the requests that evicting it would
 * make cold. Recency decays over minutes and demand counts each arrival expected within the
 * horizon; both are multiplied by how many requests a reload would catch (every arrival
 * during the load waits for it), so a hot model that is slow to load weighs more than its
 * arrival rate alone says.
 */
export function residentValue(model: ResidentModel, now: number, tuning: Pick<PlacementTuning, 'recencyTauMs' | 'demandHorizonMs'>): number {
  // Evicted here, it is refilled on the peer with room: only the arrivals during that reload are lost.
  if (model.rehomable) return coldPerReload(model.demandPerS, model.reloadMs);
  return requestsMadeCold(model.demandPerS, model.reloadMs, Math.max(0, now - model.lastUsedAt), tuning);
}

/** Every arrival during a load waits for it. */
function coldPerReload(demandPerS: number, reloadMs: number): number {
  return 1 + (demandPerS * reloadMs) / 1000;
}

/** What `residentValue` counts, for a model with this demand, load time and idle time. */
function requestsMadeCold(demandPerS: number, reloadMs: number, idleMs: number, tuning: Pick<PlacementTuning, 'recencyTauMs' | 'demandHorizonMs'>): number {
  const recency = Math.exp(-idleMs / tuning.recencyTauMs);
  const expectedArrivals = (demandPerS * tuning.demandHorizonMs) / 1000;
  return (expectedArrivals + recency) * coldPerReload(demandPerS, reloadMs);
}

/** The same, per byte held: the order in which idle models make room (lowest first). */
export function residentValuePerByte(model: ResidentModel, now: number, tuning: Pick<PlacementTuning, 'recencyTauMs' | 'demandHorizonMs'>): number {
  return residentValue(model, now, tuning) / Math.max(1, model.vramBytes);
}

export function isEvictable(model: ResidentModel, now: number, tuning: PlacementTuning): boolean {
  return !model.pinned && model.inFlight === 0 && (model.speculative === true || now - model.loadedAt >= tuning.minResidencyMs);
}

export type EvictionPlan = { ok: true; evict: string[] } | { ok: false; reason: string };

export interface EvictionOptions {
  /**
   * Which residents may go; default `isEvictable` (idle, not pinned, past the minimum
   * residency). A speculative load (a copy for rising demand, nothing waits for it yet)
   * passes `() => false`: it takes free VRAM only — letting it evict models nobody had asked
   * for within the demand window still made the tail cold. A drain for a starving model
   * passes "not pinned": busy and young models may go.
   */
  evictable?: (model: ResidentModel) => boolean;
}

/**
 * Which residents to unload so that `needBytes` fits, giving up as little value as it can:
 * least valuable per byte first, then without the victims that turned out not to be
 * needed, or a single model that covers the shortfall alone if that loses less. Refuses
 * rather than touch a model `evictable` rules out: the job then waits in Redis, where
 * another node may take it.
 */
export function planEvictions(
  needBytes: number,
  freeBytes: number,
  resident: ResidentModel[],
  now: number,
  tuning: PlacementTuning,
  options: EvictionOptions = {},
): EvictionPlan {
  const evictable = options.evictable ?? ((model: ResidentModel) => isEvictable(model, now, tuning));
  const value = new Map(resident.filter(evictable).map((model) => [model, residentValue(model, now, tuning)]));
  const valueOf = (model: ResidentModel) => value.get(model) ?? 0;
  const candidates = [...value.keys()].sort((a, b) => valueOf(a) / Math.max(1, a.vramBytes) - valueOf(b) / Math.max(1, b.vramBytes));
  const fitsAfter = (victims: readonly ResidentModel[]) => {
    const freed = victims.reduce((sum, model) => sum + model.vramBytes, freeBytes);
    const countAfter = resident.length - victims.length + 1;
    return freed >= needBytes && (tuning.maxLoaded === 0 || countAfter <= tuning.maxLoaded);
  };
  let victims: ResidentModel[] = [];
  for (const model of candidates) {
    if (fitsAfter(victims)) break;
    victims.push(model);
  }
  if (!fitsAfter(victims)) {
    const reclaimable = candidates.reduce((sum, model) => sum + model.vramBytes, 0);
    const tooMany = tuning.maxLoaded > 0 && freeBytes + reclaimable >= needBytes;
    return {
      ok: false,
      reason: tooMany
        ? `backend holds at most ${tuning.maxLoaded} models and none can be evicted`
        : `needs ${formatGB(needBytes)} GB; free ${formatGB(freeBytes)} GB plus ${formatGB(reclaimable)} GB held by evictable models is not enough`,
    };
  }
  // Greedy by value per byte can overshoot: a small model taken early may be unnecessary
  // once a big one was added. Keep the most valuable victims whenever the rest suffice.
  for (const model of [...victims].sort((a, b) => valueOf(b) - valueOf(a))) {
    const without = victims.filter((victim) => victim !== model);
    if (fitsAfter(without)) victims = without;
  }
  const lost = victims.reduce((sum, model) => sum + valueOf(model), 0);
  const single = candidates.filter((model) => fitsAfter([model])).sort((a, b) => valueOf(a) - valueOf(b))[0];
  if (single && valueOf(single) < lost) victims = [single];
  return { ok: true, evict: victims.map((model) => model.name) };
}

export interface WaitingModel {
  /** Its jobs waiting in Redis. */
  waiting: number;
  oldestWaitMs: number;
  demandPerS: number;
  reloadMs: number;
}

/**
 * Whether a model that jobs wait for should displace resident models (evict idle ones, or
 * drain busy ones): its worth — its value as if resident plus the jobs already waiting, in
 * the same unit as `residentValue` (requests that would be cold) — must be
 * `displacementMargin` times theirs (hysteresis, so two lukewarm models do not evict each
 * other in turn). Once its oldest job has waited longer than `agingMs`, the worth is
 * multiplied by the square of how many `agingMs` that is. So a hot model takes room from
 * lukewarm ones at once, while one request for a tail model cannot push out the phase's hot
 * set (which would only make the hot model cold next: seen in bench:fleet as every model
 * loaded 10–17 times a day), yet no job waits for ever: another node with cheaper victims
 * may take it first, and its worth keeps growing.
 */
export function displacementPays(
  model: WaitingModel,
  victims: readonly ResidentModel[],
  now: number,
  tuning: PlacementTuning,
  agingMs: number,
): { pays: boolean; worth: number; lost: number } {
  const aging = Math.max(1, (model.oldestWaitMs / Math.max(1, agingMs)) ** 2);
  // Its value as if it were resident and had just been used, plus the jobs already waiting.
  const worth = (requestsMadeCold(model.demandPerS, model.reloadMs, 0, tuning) + model.waiting) * aging;
  const lost = victims.reduce((sum, victim) => sum + residentValue(victim, now, tuning), 0);
  // Both sides come back with the verdict, for the logs.
  return { pays: worth >= lost * tuning.displacementMargin, worth, lost };
}

export interface CopyDemand {
  /** Warm copies on live agents (including this one). */
  copies: number;
  /**
   * Slots the warm copies have free right now (per their heartbeats): jobs that fit in them
   * are about to be claimed, so their wait says nothing about a missing copy.
   */
  freeSlotsOnCopies: number;
  /** Other agents loading it right now (per their heartbeats). */
  loadingCopies: number;
  waiting: number;
  oldestWaitMs: number;
  expectedLoadMs: number;
  /** Mean time a job of this model occupies a slot. */
  serviceMs: number;
  parallelPerCopy: number;
}

/**
 * `holders`: how many agents may load the model at once for this decision (the warm lease's
 * slots, `FleetState.acquireWarmLease`); a load beside another goes into free VRAM only.
 */
export type CopyDecision = { warm: true; reason: 'no_copy' | 'queue_too_old' | 'cannot_drain'; holders: number } | { warm: false };

/**
 * Whether to load a model nobody holds into free VRAM although no job waits for it: it was
 * asked for within `recentMs` (so it was evicted for room, not unloaded for idleness) and
 * this node has the room now. Requests for it keep coming at its old rate; without a copy
 * each one is cold. Only free VRAM: it displaces nothing, and it is the first to go if a
 * model with waiting jobs needs the room before it serves.
 */
export function shouldRefill(input: { copies: number; beingWarmed: boolean; lastArrivalAt: number | undefined; now: number; recentMs: number }): boolean {
  if (input.copies > 0 || input.beingWarmed || input.lastArrivalAt === undefined) return false;
  return input.now - input.lastArrivalAt <= input.recentMs;
}

/**
 * Whether the fleet needs one more warm copy of a model for jobs that wait (DESIGN.md
 * "Scheduling"). A copy before any job waits is `shouldSpread`'s.
 */
export function needsAnotherCopy(input: CopyDemand): CopyDecision {
  const slotsPerCopy = Math.max(1, input.parallelPerCopy);
  // No copy yet: every waiting job waits for a load whatever happens, and copies loading side
  // by side are ready together. So as many load at once as the waiting jobs fill (a burst
  // of 12 on a 4-slot model: three), counted from the jobs, not from heartbeats that may not
  // show the loads under way yet; the lease's slots hold the count.
  if (input.copies === 0) {
    const holders = Math.ceil(input.waiting / slotsPerCopy);
    // Loads seen under way already take those jobs: no lease attempt each round while they run.
    return input.waiting > 0 && holders > input.loadingCopies ? { warm: true, reason: 'no_copy', holders } : { warm: false };
  }
  // Copies being loaded count as slots about to free up.
  const backlog = input.waiting - input.freeSlotsOnCopies - input.loadingCopies * slotsPerCopy;
  if (backlog <= 0) return { warm: false };
  const holders = input.loadingCopies + 1;
  if (input.oldestWaitMs > input.expectedLoadMs) return { warm: true, reason: 'queue_too_old', holders };
  const capacityPerMs = ((input.copies + input.loadingCopies) * slotsPerCopy) / Math.max(1, input.serviceMs);
  if (input.waiting / capacityPerMs > input.expectedLoadMs) return { warm: true, reason: 'cannot_drain', holders };
  return { warm: false };
}

/**
 * Utilisation a model's copies are kept under while nodes have free VRAM and idle slots:
 * a copy in VRAM nobody else wants costs nothing and yields to real demand (it is loaded on
 * speculation, see `ResidentModel.speculative`), while a copy that arrives after the queue
 * formed is a load time late. Half leaves room for a burst of twice the current rate.
 */
export const SPREAD_UTILISATION = 0.5;

export interface SpreadInput {
  /** Warm copies on live agents (other than this one, which has none). */
  copies: number;
  /** Other agents loading it right now (per their heartbeats). */
  loadingCopies: number;
  /** Arrivals per second: the higher of the window's rate and the recent (burst) rate. */
  arrivalPerS: number;
  /**
   * Mean time a job of this model holds a slot, as measured (here or by a copy); undefined
   * until a job of it has finished somewhere. Then `inFlightOnCopies` stands in.
   */
  serviceMs: number | undefined;
  /** Jobs the copies report running: the busy slots observed, for a model with no measured service time yet. */
  inFlightOnCopies?: number;
  parallelPerCopy: number;
  /** Slots this agent has free now (none claimed, none running). */
  freeSlotsHere: number;
}

export interface SpreadDecision {
  spread: boolean;
  /** Agents that may load it at once for this demand (the warm lease's slots): the copies wanted beyond those warm. */
  holders: number;
  /** Copies the demand asks for: arrivals × service time ÷ (slots per copy × `SPREAD_UTILISATION`). */
  wanted: number;
  /** Slots the demand keeps busy on average (Little's law), for the logs. */
  busySlots: number;
}

/**
 * Whether this node, which has the VRAM free for a model without evicting anything (the
 * caller's check), should add a copy before any job waits for it: the model has copies and
 * is in demand, the copies it asks for — in proportion to its arrival rate and service
 * time — outnumber those there are, and this node has a copy's worth of slots idle. The
 * first copy is not this rule's: a job waiting for it (`needsAnotherCopy`) or a recent
 * request (`shouldRefill`) brings it.
 */
export function shouldSpread(input: SpreadInput): SpreadDecision {
  // Little's law when the service time is measured. Before that, the jobs running on the
  // copies are the evidence: a default service time (5 s) read one request to a model
  // serving 12 ms jobs as five busy slots, and added copies nobody needed.
  const busySlots = input.serviceMs !== undefined ? (input.arrivalPerS * input.serviceMs) / 1000 : (input.inFlightOnCopies ?? 0);
  const wanted = Math.ceil(busySlots / (Math.max(1, input.parallelPerCopy) * SPREAD_UTILISATION));
  const spread = input.copies > 0 && input.arrivalPerS > 0 && input.freeSlotsHere >= input.parallelPerCopy && wanted > input.copies + input.loadingCopies;
  return { spread, wanted, busySlots, holders: Math.max(1, wanted - input.copies) };
}

export type UnloadDecision = { unload: true; reason: 'idle' | 'extra_copy' } | { unload: false };

/**
 * Whether a resident model should be unloaded now. `keeperElsewhere` is true when another
 * live agent whose id sorts before this one also has it loaded: of several idle copies the
 * one on the lowest agent id stays, so scaling back down never leaves zero copies.
 */
export function shouldUnload(model: ResidentModel, now: number, tuning: PlacementTuning, keeperElsewhere: boolean): UnloadDecision {
  if (model.pinned || model.inFlight > 0) return { unload: false };
  const idleMs = now - model.lastUsedAt;
  if (idleMs >= tuning.idleUnloadMs) return { unload: true, reason: 'idle' };
  if (keeperElsewhere && idleMs >= tuning.extraCopyIdleMs && now - model.loadedAt >= tuning.minResidencyMs) {
    return { unload: true, reason: 'extra_copy' };
  }
  return { unload: false };
}
