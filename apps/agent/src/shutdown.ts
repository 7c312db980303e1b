import type { RedisConnection } from '@switchyard/redis';
import type { Logger } from 'pino';
import type { Backend } from '@switchyard/backends';
import { closeRedis, type FleetRegistry, type QueueRegistry } from '@switchyard/redis';
import type { HeartbeatBuilder, HeartbeatPublisher } from './heartbeat-builder.js';
import type { LifecycleManager } from './lifecycle-manager.js';
import type { ModelInventory } from './model-inventory.js';
import type { PullScheduler } from './pull-scheduler.js';
import type { WorkerSet } from './worker-set.js';

export interface ShutdownParts {
  agentId: string;
  /** Where released jobs are announced. */
  workChannel: string;
  parts: {
    heartbeat: HeartbeatBuilder;
    publisher: HeartbeatPublisher;
    registry: FleetRegistry;
    inventory: ModelInventory;
    lifecycle: LifecycleManager;
    scheduler: PullScheduler;
    workers: WorkerSet;
    queues: QueueRegistry;
    redis: RedisConnection;
    subscriber: RedisConnection;
  };
  /** Closed on `close()` only when the agent made it (not one a caller passed in). */
  ownedBackend: Backend | undefined;
  logger: Logger;
}

/**
 * The agent's two ways to stop, in one place. Both first stop what starts new work (model
 * refreshes, placement rounds, claims) so nothing begins while the rest winds down.
 */
export class AgentShutdown {
  private closing: Promise<void> | undefined;

  constructor(private readonly options: ShutdownParts) {}

  /** Stops pulling, lets running jobs finish, removes the heartbeat, closes connections. Once, however often called. */
  close(): Promise<void> {
    return (this.closing ??= this.closeOnce());
  }

  /**
   * Stops pulling, puts every running job back at the head of its queue and removes the
   * heartbeat; resolves with how many jobs went back. Connections stay open: the process
   * exits right after.
   */
  async handBack(): Promise<number> {
    const { agentId, workChannel } = this.options;
    const { heartbeat, inventory, lifecycle, publisher, scheduler, redis, registry } = this.options.parts;
    heartbeat.draining();
    inventory.stop();
    await lifecycle.stop();
    publisher.stop();
    const released = await scheduler.release();
    // Other agents find the jobs on their next sweep anyway; the announcement saves them the wait.
    await Promise.all([...new Set(released)].map((queueKey) => redis.publish(workChannel, queueKey).catch(() => undefined)));
    await registry.remove(agentId).catch(() => undefined);
    return released.length;
  }

  private async closeOnce(): Promise<void> {
    const { heartbeat, publisher, inventory, lifecycle, scheduler, registry, workers, queues, subscriber, redis } = this.options.parts;
    // Said first, so peers stop counting on this agent while its jobs finish.
    heartbeat.draining();
    await publisher.publish().catch(() => undefined);
    inventory.stop();
    await lifecycle.stop();
    await scheduler.drain();
    publisher.stop();
    await registry.remove(this.options.agentId).catch(() => undefined);
    await workers.close();
    await queues.close();
    await closeRedis(subscriber);
    await closeRedis(redis);
    if (this.options.ownedBackend) await this.options.ownedBackend.close();
    this.options.logger.info('agent stopped');
  }
}
