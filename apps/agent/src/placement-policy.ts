/**
 * The placement decisions of one agent, as pure functions of what it knows, so that each
 * rule can be tested on its own. The LifecycleManager gathers the inputs and acts.
 */

export interface ResidentModel {
  name: string;
  vramBytes: number;
  inFlight: number;
  loadedAt: number;
  lastUsedAt: number;
  pinned: boolean;
  /** Arrivals per second across the fleet, over the demand window. */
  demandPerS: number;
}

export interface PlacementTuning {
  minResidencyMs: number;
  /** Time constant of the recency term in a resident model's value (default 120 s). */
  recencyTauMs?: number;
  /** Horizon over which expected arrivals count toward a resident model's value (default 60 s). */
  demandHorizonMs?: number;
  idleUnloadMs: number;
  extraCopyIdleMs: number;
  /** Most models resident at once; 0 = only VRAM limits it. */
  maxLoaded: number;
}

/** How much a resident model is worth keeping, per byte it holds. Higher stays longer. */
export function residentValuePerByte(model: ResidentModel, now: number, tuning: Pick<PlacementTuning, 'recencyTauMs' | 'demandHorizonMs'> = {}): number {
  // Recency decays over minutes; demand counts each arrival expected within the horizon.
  const idleMs = Math.max(0, now - model.lastUsedAt);
  const recency = Math.exp(-idleMs / (tuning.recencyTauMs ?? 120_000));
  const value = (model.demandPerS * (tuning.demandHorizonMs ?? 60_000)) / 1000 + recency;
  return value / Math.max(1, model.vramBytes);
}

export function isEvictable(model: ResidentModel, now: number, tuning: PlacementTuning): boolean {
  return !model.pinned && model.inFlight === 0 && now - model.loadedAt >= tuning.minResidencyMs;
}

export type EvictionPlan = { ok: true; evict: string[] } | { ok: false; reason: string };

/**
 * Which idle models to unload so that `needBytes` fits, least valuable per byte first.
 * Refuses rather than touch a busy, pinned or freshly loaded model: the job then waits in
 * Redis, where another node may take it.
 */
export function planEvictions(
  needBytes: number,
  freeBytes: number,
  resident: ResidentModel[],
  now: number,
  tuning: PlacementTuning,
): EvictionPlan {
  const candidates = resident
    .filter((model) => isEvictable(model, now, tuning))
    .sort((a, b) => residentValuePerByte(a, now, tuning) - residentValuePerByte(b, now, tuning));
  const evict: string[] = [];
  let free = freeBytes;
  let count = resident.length;
  const tooMany = () => tuning.maxLoaded > 0 && count + 1 > tuning.maxLoaded;
  for (const model of candidates) {
    if (free >= needBytes && !tooMany()) break;
    evict.push(model.name);
    free += model.vramBytes;
    count--;
  }
  if (free < needBytes) {
    const reclaimable = candidates.reduce((sum, model) => sum + model.vramBytes, 0);
    return {
      ok: false,
      reason: `needs ${gb(needBytes)} GB; free ${gb(freeBytes)} GB plus ${gb(reclaimable)} GB held by idle evictable models is not enough`,
    };
  }
  if (tooMany()) return { ok: false, reason: `backend holds at most ${tuning.maxLoaded} models and none can be evicted` };
  return { ok: true, evict };
}

export interface CopyDemand {
  /** Warm copies on live agents (including this one). */
  copies: number;
  /**
   * Slots the warm copies have free right now (per their heartbeats): jobs that fit in them
   * are about to be claimed, so their wait says nothing about a missing copy.
   */
  freeSlotsOnCopies: number;
  /** Another agent holds the warm lease (is loading it) right now. */
  beingWarmed: boolean;
  waiting: number;
  oldestWaitMs: number;
  expectedLoadMs: number;
  /** Mean time a job of this model occupies a slot. */
  serviceMs: number;
  parallelPerCopy: number;
  arrivalPerS: number;
}

export type CopyDecision = { warm: true; reason: 'no_copy' | 'queue_too_old' | 'cannot_drain' | 'demand_rising' } | { warm: false };

/** Utilisation of the warm copies above which another copy is warmed before a queue forms. */
export const SCALE_OUT_UTILISATION = 0.8;

/** Whether the fleet needs one more warm copy of a model (DESIGN.md "Scheduling"). */
export function needsAnotherCopy(input: CopyDemand): CopyDecision {
  if (input.beingWarmed) return { warm: false };
  if (input.copies === 0) return input.waiting > 0 ? { warm: true, reason: 'no_copy' } : { warm: false };
  const backlog = input.waiting - input.freeSlotsOnCopies;
  if (backlog > 0 && input.oldestWaitMs > input.expectedLoadMs) return { warm: true, reason: 'queue_too_old' };
  const capacityPerMs = (input.copies * input.parallelPerCopy) / Math.max(1, input.serviceMs);
  if (backlog > 0 && input.waiting / capacityPerMs > input.expectedLoadMs) return { warm: true, reason: 'cannot_drain' };
  const utilisation = (input.arrivalPerS * input.serviceMs) / 1000 / (input.copies * input.parallelPerCopy);
  if (utilisation > SCALE_OUT_UTILISATION) return { warm: true, reason: 'demand_rising' };
  return { warm: false };
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

function gb(bytes: number): string {
  return (bytes / 1e9).toFixed(1);
}
