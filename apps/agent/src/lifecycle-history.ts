import type { LifecycleEvent } from '@switchyard/protocol';
import type { LifecycleMetrics } from './agent-metrics.js';

/**
 * Loads and unloads kept in the heartbeat: enough for an operator to see why a model went
 * (evicted for which model, idle) and what came in, without a store of its own — the list
 * lives and expires with the agent's heartbeat record, so it needs no key, no TTL and no
 * cleanup, and it stays on the agent's own hash slot under Redis Cluster.
 */
export const LIFECYCLE_LOG_SIZE = 20;

/** The last {@link LIFECYCLE_LOG_SIZE} lifecycle events of this agent, oldest first. */
export class LifecycleHistory {
  private readonly events: LifecycleEvent[] = [];

  constructor(
    private readonly capacity = LIFECYCLE_LOG_SIZE,
    private readonly clock: () => number = Date.now,
  ) {}

  record(event: Omit<LifecycleEvent, 'at'>): void {
    this.events.push({ at: this.clock(), ...event });
    if (this.events.length > this.capacity) this.events.splice(0, this.events.length - this.capacity);
  }

  list(): LifecycleEvent[] {
    return [...this.events];
  }

  /**
   * The lifecycle manager's metric hooks, recording each load, failed load and unload here
   * before passing it on: the hooks are called exactly where those happen, so the history
   * and the counters cannot disagree.
   */
  observing(metrics: LifecycleMetrics | undefined): LifecycleMetrics {
    return {
      modelLoaded: (model, reason, seconds) => {
        this.record({ kind: 'loaded', model, reason, seconds: Math.round(seconds * 1000) / 1000 });
        metrics?.modelLoaded(model, reason, seconds);
      },
      loadFailed: (model, reason, outOfMemory) => {
        this.record({ kind: 'load_failed', model, reason, ...(outOfMemory && { out_of_memory: true }) });
        metrics?.loadFailed(model, reason, outOfMemory);
      },
      modelUnloaded: (model, reason) => {
        this.record({ kind: 'unloaded', model, reason });
        metrics?.modelUnloaded(model, reason);
      },
      leaseHeld: (model) => metrics?.leaseHeld(model),
      placementRound: () => metrics?.placementRound() ?? (() => undefined),
    };
  }
}
