import type { Processor } from 'bullmq';
import type { RedisConnection } from '@switchyard/redis';
import type { Logger } from 'pino';
import { modelToQueueName, pinnedQueueModel, splitQueueModel, type JobResult } from '@switchyard/protocol';
import { ManualWorker } from '@switchyard/redis';
import type { ModelInventory } from './model-inventory.js';
import type { RedisReporter } from './redis-reporting.js';

export type ModelWorker = ManualWorker<unknown, JobResult>;

export interface WorkerSetOptions {
  redis: RedisConnection;
  bullPrefix: string;
  processor: Processor<unknown, JobResult>;
  inventory: Pick<ModelInventory, 'get' | 'models'>;
  lockDurationMs: number;
  stalledIntervalMs: number;
  reportRedis: RedisReporter;
  logger: Logger;
}

/**
 * The per-queue BullMQ workers of this agent: one for every queue key that feeds a model
 * the backend offers (the plain model and its digest-pinned queue), opened when the model
 * appears and closed when it goes. The pull scheduler claims through `workers`.
 */
export class WorkerSet {
  /** Queue key (model, or model@digest) → its worker. */
  readonly workers = new Map<string, ModelWorker>();

  constructor(private readonly options: WorkerSetOptions) {}

  /** The queue keys (plain and digest-pinned) that feed `model`. */
  queueKeysOf(model: string): string[] {
    const state = this.options.inventory.get(model);
    // A rollout copy of an old build is already named by the one queue it serves.
    if (splitQueueModel(model).digest !== undefined) return [model];
    return state ? [model, pinnedQueueModel(model, state.digest)] : [model];
  }

  /** Opens a worker for every queue of the backend's models and closes those of models gone. */
  async sync(): Promise<void> {
    const { logger } = this.options;
    const wanted = new Set(this.options.inventory.models().flatMap((model) => this.queueKeysOf(model)));
    await Promise.all([...wanted].map((queueKey) => this.open(queueKey)));
    for (const [key, worker] of this.workers) {
      if (wanted.has(key)) continue;
      this.workers.delete(key);
      logger.info({ queue: key }, 'model gone from backend; no longer serving its queue');
      void worker.close().catch(() => undefined);
    }
  }

  /**
   * Cancels `jobId` in the workers of `model`'s queues, if it runs there; says which
   * queue keys had it.
   */
  cancelJob(model: string, jobId: string, reason: string): string[] {
    const had: string[] = [];
    for (const [key, worker] of this.workers) {
      if (splitQueueModel(key).model !== splitQueueModel(model).model) continue;
      if (worker.cancelJob(jobId, reason)) had.push(key);
    }
    return had;
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers.values()].map((worker) => worker.close()));
  }

  private async open(queueKey: string): Promise<void> {
    if (this.workers.has(queueKey)) return;
    const { redis, bullPrefix, processor, logger } = this.options;
    const worker = new ManualWorker<unknown, JobResult>(modelToQueueName(queueKey), processor, {
      connection: redis,
      prefix: bullPrefix,
      lockDuration: this.options.lockDurationMs,
      stalledInterval: this.options.stalledIntervalMs,
      maxStalledCount: 1,
    });
    // Each worker has a blocking connection of its own, whose errors arrive here.
    worker.on('error', this.options.reportRedis('worker', { queue: queueKey }));
    this.workers.set(queueKey, worker);
    await worker.startMaintenance();
    logger.info({ queue: queueKey }, 'serving queue');
  }
}
