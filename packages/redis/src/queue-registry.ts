import { EventEmitter } from 'node:events';
import type { RedisConnection } from './connection.js';
import { Queue } from 'bullmq';
import { modelToQueueName, type JobData, type JobResult, type RedisKeys } from '@switchyard/protocol';

export type ModelQueue = Queue<JobData, JobResult>;

/**
 * The per-model BullMQ queues of one process, created on first use.
 *
 * All queues share one ioredis connection: BullMQ allows it for Queue (not Worker), and it
 * measured faster and uses a third of the connections. New queues are announced with a
 * `queue` event (Bull Board adds them) and recorded in a set so that a restarted API
 * still lists queues created by others.
 */
export class QueueRegistry extends EventEmitter<{ queue: [model: string, queue: ModelQueue] }> {
  private readonly queues = new Map<string, ModelQueue>();

  constructor(
    private readonly connection: RedisConnection,
    private readonly keys: RedisKeys,
  ) {
    super();
  }

  /** The queue of a canonical model name; creates the Queue object if this process has none yet. */
  get(model: string): ModelQueue {
    let queue = this.queues.get(model);
    if (!queue) {
      queue = new Queue<JobData, JobResult>(modelToQueueName(model), {
        connection: this.connection,
        prefix: this.keys.bullPrefix,
      });
      // Errors surface through the calls that hit them; an unhandled 'error' would crash.
      queue.on('error', () => undefined);
      this.queues.set(model, queue);
      this.connection.sadd(this.keys.knownModels, model).catch(() => undefined);
      this.emit('queue', model, queue);
    }
    return queue;
  }

  /** Queues this process has opened. */
  opened(): Map<string, ModelQueue> {
    return this.queues;
  }

  /** Every model any process ever queued for, opening their queues here too. */
  async discover(): Promise<string[]> {
    const models = await this.connection.smembers(this.keys.knownModels);
    for (const model of models) this.get(model);
    return models.sort();
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close()));
    this.queues.clear();
  }
}
