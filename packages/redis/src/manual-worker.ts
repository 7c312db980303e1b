import { Worker, type Job, type Processor, type WorkerOptions } from 'bullmq';

/**
 * A BullMQ Worker whose jobs are fetched by the caller, one at a time, when the caller
 * has a free slot: BullMQ's own main loop fetches up to `concurrency` per queue, and an
 * agent serving several models would then take more jobs than its GPU slots and hide
 * them from the fleet. Processing, lock renewal, cancellation signals and
 * completion still go through BullMQ's code.
 */
export class ManualWorker<Data, Result> extends Worker<Data, Result> {
  constructor(name: string, processor: Processor<Data, Result>, options: WorkerOptions) {
    super(name, processor, { ...options, autorun: false });
  }

  /** Starts what `run()` would start besides the fetch loop: stalled-job checks and lock renewal. */
  async startMaintenance(): Promise<void> {
    await this.startStalledCheckTimer();
    this.lockManager.start();
  }

  /** Claims the next waiting job without blocking; undefined when the queue has none. */
  async claim(token: string): Promise<Job<Data, Result> | undefined> {
    return (await this.getNextJob(token, { block: false })) ?? undefined;
  }

  /** Runs a claimed job through the processor and settles it in Redis. */
  async process(job: Job<Data, Result>, token: string): Promise<void> {
    await this.processJob(job, token, () => false);
  }
}
