import type { RedisConnection } from '@switchyard/redis';
import type { Logger } from 'pino';
import { splitQueueModel, type RedisKeys } from '@switchyard/protocol';
import { AgentControlMessage, CancelMessage } from '@switchyard/redis';
import type { DemandTracker } from './demand-tracker.js';
import type { LifecycleManager } from './lifecycle-manager.js';
import type { ModelInventory } from './model-inventory.js';
import type { PullScheduler } from './pull-scheduler.js';
import type { RecentSet } from './recent-set.js';
import type { WorkerSet } from './worker-set.js';

export interface ControlListenerOptions {
  /** A connection of its own: once subscribed it can send no other commands. */
  subscriber: RedisConnection;
  keys: Pick<RedisKeys, 'workChannel' | 'cancelChannel' | 'controlChannel'>;
  /** This agent's id: control messages name the agent they are for. */
  agentId?: string;
  /** An operator's drain or undrain of this agent (`POST /admin/agents/:id/drain`). */
  onControl?: (action: AgentControlMessage['action']) => void;
  demand: Pick<DemandTracker, 'record'>;
  inventory: Pick<ModelInventory, 'isLoaded' | 'get' | 'modelOfQueue'>;
  scheduler: Pick<PullScheduler, 'wake' | 'noteWork'>;
  lifecycle: Pick<LifecycleManager, 'workAnnounced'>;
  /** Cancellations heard here; the job runner checks it for jobs that arrive after their cancel. */
  cancelled: Pick<RecentSet, 'add'>;
  workers: Pick<WorkerSet, 'cancelJob'>;
  logger: Logger;
}

/**
 * What the agent hears on Redis pub/sub: the API's new-work announcements (a queue key per
 * job submitted) and cancellations.
 */
export class ControlListener {
  constructor(private readonly options: ControlListenerOptions) {}

  /** Subscribes both channels; messages are handled from then on. */
  async start(): Promise<void> {
    const { subscriber, keys } = this.options;
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === keys.workChannel) this.onWork(message);
      else if (channel === keys.cancelChannel) this.onCancel(message);
      else if (channel === keys.controlChannel) this.onControlMessage(message);
    });
    await subscriber.subscribe(keys.workChannel, keys.cancelChannel, keys.controlChannel);
  }

  /** New work in `queueKey`: counts as demand, is claimed at once if its model is warm, and informs placement if the backend has it. */
  onWork(queueKey: string): void {
    const { demand, inventory, scheduler, lifecycle } = this.options;
    const model = inventory.modelOfQueue(queueKey);
    demand.record(model);
    // Cold here: no claim now, but the queue is no longer known empty when the model turns warm.
    if (inventory.isLoaded(model)) scheduler.wake(queueKey);
    else scheduler.noteWork(queueKey);
    if (inventory.get(model)) lifecycle.workAnnounced(model);
  }

  /** An operator's drain or undrain: acted on only by the agent it names. */
  onControlMessage(message: string): void {
    const { agentId, onControl, logger } = this.options;
    let parsed: AgentControlMessage;
    try {
      parsed = AgentControlMessage.parse(JSON.parse(message));
    } catch {
      logger.warn({ message: message.slice(0, 200) }, 'ignoring malformed control message');
      return;
    }
    if (parsed.agent_id !== agentId || !onControl) return;
    logger.info(
      { action: parsed.action },
      parsed.action === 'drain' ? 'drained by an operator: claiming nothing, running jobs finish' : 'undrained by an operator: claiming again',
    );
    onControl(parsed.action);
  }

  /** Remembers the cancellation (the job may not have reached this agent yet) and stops the job if it runs here. */
  onCancel(message: string): void {
    const { cancelled, workers, logger } = this.options;
    let parsed: CancelMessage;
    try {
      parsed = CancelMessage.parse(JSON.parse(message));
    } catch {
      logger.warn({ message: message.slice(0, 200) }, 'ignoring malformed cancel message');
      return;
    }
    cancelled.add(parsed.job_id);
    for (const _queueKey of workers.cancelJob(parsed.model, parsed.job_id, parsed.reason)) {
      logger.info({ jobId: parsed.job_id, reason: parsed.reason }, 'cancelling running job');
    }
  }
}
