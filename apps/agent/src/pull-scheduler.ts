import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { ManualWorker } from '@switchyard/redis';
import type { JobResult } from '@switchyard/protocol';

type ModelWorker = ManualWorker<unknown, JobResult>;

/**
 * Decides when this agent takes a job and from which model queue.
 *
 * It claims a job only while a slot is free, one claim at a time, so every job this
 * agent cannot start right now stays in Redis where other agents and the API can see
 * it. It is woken by new-work announcements, by a finished job, and by a slow sweep that
 * catches work nobody announced (retried or stalled jobs). Models are tried round-robin
 * so one busy model does not starve the others on this node.
 */
export class PullScheduler {
  private inFlight = 0;
  private pumping = false;
  private pumpAgain = false;
  private cursor = 0;
  private tokenCounter = 0;
  private stopped = false;
  private readonly running = new Set<Promise<void>>();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly options: {
      agentId: string;
      slots: number;
      workers: Map<string, ModelWorker>;
      logger: Logger;
    },
  ) {}

  get activeJobs(): number {
    return this.inFlight;
  }

  startSweep(intervalMs: number): void {
    this.sweepTimer = setInterval(() => this.wake(), intervalMs);
    this.sweepTimer.unref();
  }

  /** Asks for a pull round; `model` (when announced) is tried first. */
  wake(model?: string): void {
    if (this.stopped) return;
    if (this.pumping) {
      this.pumpAgain = true;
      return;
    }
    void this.pump(model);
  }

  private async pump(preferred?: string): Promise<void> {
    this.pumping = true;
    try {
      do {
        this.pumpAgain = false;
        while (!this.stopped && this.inFlight < this.options.slots) {
          const claimed = await this.claimOne(preferred);
          preferred = undefined;
          if (!claimed) break;
        }
      } while (this.pumpAgain && !this.stopped);
    } finally {
      this.pumping = false;
    }
  }

  private async claimOne(preferred?: string): Promise<boolean> {
    const models = [...this.options.workers.keys()];
    if (models.length === 0) return false;
    const order: string[] = [];
    if (preferred && this.options.workers.has(preferred)) order.push(preferred);
    for (let i = 0; i < models.length; i++) {
      const model = models[(this.cursor + i) % models.length]!;
      if (model !== preferred) order.push(model);
    }
    this.cursor = (this.cursor + 1) % models.length;
    for (const model of order) {
      const worker = this.options.workers.get(model);
      if (!worker || worker.closing) continue;
      const token = `${this.options.agentId}:${this.tokenCounter++}`;
      let job: Job<unknown, JobResult> | undefined;
      try {
        job = await worker.claim(token);
      } catch (error) {
        this.options.logger.warn({ err: error, model }, 'could not claim a job');
        continue;
      }
      if (!job) continue;
      this.start(worker, job, token);
      return true;
    }
    return false;
  }

  private start(worker: ModelWorker, job: Job<unknown, JobResult>, token: string): void {
    this.inFlight++;
    const run = worker
      .process(job, token)
      .catch((error) => this.options.logger.error({ err: error, jobId: job.id }, 'job processing failed'))
      .finally(() => {
        this.inFlight--;
        this.running.delete(run);
        this.wake();
      });
    this.running.add(run);
  }

  /** Stops claiming; resolves when the jobs already running have settled. */
  async drain(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.all([...this.running]);
  }
}
