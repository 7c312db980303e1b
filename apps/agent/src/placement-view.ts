import { splitQueueModel, type LoadProgress } from '@switchyard/protocol';
import type { ModelInventory, ModelState } from './model-inventory.js';

/** What the pull scheduler and the heartbeat read of the lifecycle manager's placement. */
export interface PlacementView {
  /** The model being loaded here now, if any. */
  readonly loadingModel: string | undefined;
  /** That load's start and expected duration. */
  loadProgress(): LoadProgress | undefined;
  /** True while `model` is about to be evicted here: none of its jobs may be claimed. */
  isDraining(model: string): boolean;
  /** VRAM in use here, counting the reservation of a load under way. */
  usedBytes(): number;
  /** VRAM need of a model here: measured anywhere in the fleet, else estimated. */
  needBytes(model: ModelState): { bytes: number; source: 'measured' | 'estimate' };
  /** Disk → VRAM throughput measured here, once a load was: peers estimate their loads with it. */
  measuredLoadBytesPerS?(): number | undefined;
}

/**
 * Placement and claiming need each other: the lifecycle manager asks the scheduler what runs
 * and wakes it when a model is warm, and publishes heartbeats; the scheduler and the heartbeat
 * ask the lifecycle manager what it is loading or evicting. So those two are built first
 * and read placement through this relay, which the lifecycle manager is attached to once,
 * as soon as it exists (before anything starts). A read before that is a wiring mistake.
 */
export class PlacementRelay implements PlacementView {
  private target: PlacementView | undefined;

  attach(target: PlacementView): void {
    if (this.target) throw new Error('placement is already attached');
    this.target = target;
  }

  get loadingModel(): string | undefined {
    return this.attached().loadingModel;
  }

  loadProgress(): LoadProgress | undefined {
    return this.attached().loadProgress();
  }

  isDraining(model: string): boolean {
    return this.attached().isDraining(model);
  }

  usedBytes(): number {
    return this.attached().usedBytes();
  }

  needBytes(model: ModelState): { bytes: number; source: 'measured' | 'estimate' } {
    return this.attached().needBytes(model);
  }

  measuredLoadBytesPerS(): number | undefined {
    return this.attached().measuredLoadBytesPerS?.();
  }

  private attached(): PlacementView {
    if (!this.target) throw new Error('placement read before the lifecycle manager was attached');
    return this.target;
  }
}

/**
 * The pull scheduler's `canClaim`: a job of a queue may start here only while its model is
 * warm here, neither being loaded nor about to be evicted, and has a backend slot free. An
 * embedding model's jobs are not held to the backend's parallel slots: this agent batches
 * them into one `/api/embed` call at a time, so up to `embedSlots` of them may be claimed.
 */
export function claimRule(options: {
  inventory: Pick<ModelInventory, 'isLoaded' | 'backendReachable'> & Partial<Pick<ModelInventory, 'isEmbeddingModel' | 'modelOfQueue'>>;
  placement: Pick<PlacementView, 'loadingModel' | 'isDraining'>;
  parallelPerCopy: number;
  /** Embed jobs of one embedding model claimed at once (default: `parallelPerCopy`, as any model). */
  embedSlots?: number;
}): (queueKey: string, runningOfModel: number) => boolean {
  const { inventory, placement, parallelPerCopy, embedSlots } = options;
  return (queueKey, runningOfModel) => {
    const model = inventory.modelOfQueue?.(queueKey) ?? splitQueueModel(queueKey).model;
    // A backend that stopped answering claims nothing: its jobs would fail at once ("loaded"
    // is only what the last good read said; a restarted Ollama has nothing loaded).
    if (!inventory.backendReachable) return false;
    const limit = embedSlots !== undefined && inventory.isEmbeddingModel?.(model) === true ? embedSlots : parallelPerCopy;
    return inventory.isLoaded(model) && placement.loadingModel !== model && !placement.isDraining(model) && runningOfModel < limit;
  };
}

/**
 * The pull scheduler's `claimDelayMs`: an announced job's claim is held back `perRunningJobMs`
 * for every job of its model already running here, so of the copies that hear the same
 * announcement the least busy one claims first and the jobs spread evenly over the copies.
 * An idle copy claims at once; a job nobody else can take waits at most
 * `(parallelPerCopy − 1) × perRunningJobMs` (a full copy claims nothing anyway).
 */
export function claimDelay(perRunningJobMs: number): (queueKey: string, runningOfModel: number) => number {
  return (_queueKey, runningOfModel) => Math.max(0, runningOfModel) * perRunningJobMs;
}
