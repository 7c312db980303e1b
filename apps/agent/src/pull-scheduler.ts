import { setTimeout as sleep } from 'node:timers/promises';
import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { ManualWorker } from '@switchyard/redis';
import { splitQueueModel, type JobResult } from '@switchyard/protocol';

type ModelWorker = ManualWorker<unknown, JobResult>;

/** A pull round over every queue served (`all`), or over those that may have work (`known`: not found empty since an announcement). */
type RoundScope = 'all' | 'known';

const widest = (a: RoundScope | undefined, b: RoundScope): RoundScope => (a === 'all' || b === 'all' ? 'all' : b);

/**
 * Decides when this agent takes a job and from which queue.
 *
 * It claims a job only while a slot is free and only from queues whose model may run here
 * now (`canClaim`: warm on this node with a free backend slot), one claim at a time, so
 * every job this agent cannot start right away stays in Redis where other agents and the
 * API can see it. It is woken by new-work announcements, by a finished job, by a model
 * becoming warm, and by a slow sweep that catches work nobody announced (retried or
 * stalled jobs). Queues are tried round-robin so one busy model does not starve the others.
 */
export class PullScheduler {
  private inFlight = 0;
  /** Claims sent to Redis and not yet answered: they hold a slot until they do. */
  private claiming = 0;
  /** Of those, the embed queues' (their own budget, `embedSlots`). */
  private embedInFlight = 0;
  private embedClaiming = 0;
  private readonly runningPerModel = new Map<string, number>();
  private pumping = false;
  /** A round asked for while one ran: over every queue, or only those that may have work. */
  private pumpAgain: RoundScope | undefined;
  /**
   * Queue keys whose last claim found nothing and that no announcement has named since: a
   * round after a finished job skips them (an idle queue cost each finish one empty claim
   * script per queue served: bench:trace's agents spent an eighth of their CPU on those).
   * The sweep and every full round still try them.
   */
  private readonly foundEmpty = new Set<string>();
  /** Announcements heard per queue key: a claim that found nothing marks its queue empty only if none came meanwhile. */
  private readonly announcements = new Map<string, number>();
  private cursor = 0;
  private tokenCounter = 0;
  private stopped = false;
  /** An operator's drain: no claims until resumed (running jobs go on). */
  private paused = false;
  private readonly running = new Set<Promise<void>>();
  /** What each running job needs to be handed back: its queue key, job and lock token. */
  private readonly claims = new Map<Promise<void>, { key: string; job: Job<unknown, JobResult>; token: string }>();
  private sweepTimer: NodeJS.Timeout | undefined;
  /** Lock token of each job that holds a slot → what frees it (once: at the backend's end or when the job settles). */
  private readonly slotHolders = new Map<string, () => void>();

  constructor(
    private readonly options: {
      agentId: string;
      slots: number;
      /**
       * Jobs of embed queues run at once, apart from `slots` (default: none apart, they share
       * `slots`). Embed jobs are short and batched into few backend calls, so many run at once.
       */
      embedSlots?: number;
      /** Whether a queue holds embed jobs (its model only embeds): claimed in the `embedSlots` budget. */
      isEmbedQueue?: (queueKey: string) => boolean;
      /** Queue key (model, or model@digest) → its worker. */
      workers: Map<string, ModelWorker>;
      /** The model that serves a queue key (the inventory's rule: a rollout copy for an old build's queue); default the key's model. */
      modelOfQueue?: (queueKey: string) => string;
      /**
       * Whether one more job of this queue key may start here now, given how many jobs of
       * its model this scheduler already runs (counted from the claim, not from when the
       * job body starts, so two quick claims cannot both take the last backend slot).
       */
      canClaim: (queueKey: string, runningOfModel: number) => boolean;
      /**
       * How long to hold back the claim of an announced job of this queue key, given how many
       * jobs of its model run here (default none): every copy with a free slot hears the same
       * announcement, and without a handicap the fastest claimer wins every race, so one copy
       * took 1,132 jobs where the others took 876 and 859 (issue 17). With a delay that grows
       * with the work already running here, the copy with the most free capacity claims first.
       */
      claimDelayMs?: (queueKey: string, runningOfModel: number) => number;
      /** Waits `ms` before a held-back claim (a test passes its own, to order claims itself). */
      sleep?: (ms: number) => Promise<unknown>;
      /** Records a handed-back job as queued again (`JobLifecycle.requeue`). */
      requeue?: (jobId: string, attempt: { token: string; number: number }) => Promise<unknown>;
      logger: Logger;
    },
  ) {}

  get activeJobs(): number {
    return this.inFlight;
  }

  /** Running jobs that hold one of `slots` (embed jobs in their own budget do not). */
  get slotJobs(): number {
    return this.inFlight - this.embedInFlight;
  }

  startSweep(intervalMs: number): void {
    this.sweepTimer = setInterval(() => this.wake(), intervalMs);
    this.sweepTimer.unref();
  }

  /**
   * Asks for a pull round. An announced `queueKey` (one new job) gets its own claim at once,
   * concurrently with other claims: a burst of 50 submissions must not wait for 50
   * sequential round trips. Without a key, a sequential round tries every queue.
   */
  /** Claims nothing until `resume` (an operator's drain); running jobs go on. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.wake();
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** New work was announced for `queueKey`: a round after a finished job tries it again, even if its last claim found it empty. */
  noteWork(queueKey: string): void {
    this.foundEmpty.delete(queueKey);
    // Counted only for queues served here (every agent hears every model's announcements).
    if (this.options.workers.has(queueKey)) this.announcements.set(queueKey, (this.announcements.get(queueKey) ?? 0) + 1);
  }

  wake(queueKey?: string): void {
    if (queueKey !== undefined) this.noteWork(queueKey);
    if (this.stopped || this.paused) return;
    if (queueKey !== undefined && this.options.workers.has(queueKey)) {
      const claim = () =>
        this.claimFrom(queueKey).then((claimed) => {
          // Nothing there (another agent was faster) or no room: fall back to a round later.
          if (!claimed && this.pumping) this.pumpAgain = widest(this.pumpAgain, 'known');
        });
      // Embed jobs are not spread: they are batched by what runs at once here.
      const delayMs = this.embedBudget(queueKey) ? 0 : (this.options.claimDelayMs?.(queueKey, this.runningOf(splitQueueModel(queueKey).model)) ?? 0);
      if (delayMs > 0) void (this.options.sleep ?? sleep)(delayMs).then(claim);
      else void claim();
      return;
    }
    this.round('all');
  }

  /** A slot freed: a round over the queues that may have work. */
  private slotFreed(): void {
    if (this.stopped || this.paused) return;
    this.round('known');
  }

  private round(scope: RoundScope): void {
    if (this.pumping) {
      this.pumpAgain = widest(this.pumpAgain, scope);
      return;
    }
    void this.pump(scope);
  }

  private embedBudget(key: string): boolean {
    return this.options.embedSlots !== undefined && this.options.isEmbedQueue?.(key) === true;
  }

  /** Room for one more claim of `key`'s budget; without a key, of either budget. */
  private hasRoom(key?: string): boolean {
    const generationRoom = this.inFlight - this.embedInFlight + (this.claiming - this.embedClaiming) < this.options.slots;
    const embedRoom = this.embedInFlight + this.embedClaiming < (this.options.embedSlots ?? 0);
    if (key === undefined) return generationRoom || embedRoom;
    return this.embedBudget(key) ? embedRoom : generationRoom;
  }

  private async pump(first: RoundScope): Promise<void> {
    this.pumping = true;
    let scope: RoundScope | undefined = first;
    try {
      while (scope !== undefined && !this.stopped) {
        this.pumpAgain = undefined;
        while (!this.stopped && this.hasRoom()) {
          if (!(await this.claimOne(scope))) break;
        }
        scope = this.pumpAgain;
      }
    } finally {
      this.pumping = false;
    }
  }

  private async claimOne(scope: RoundScope): Promise<boolean> {
    const keys = [...this.options.workers.keys()].filter((key) => scope === 'all' || !this.foundEmpty.has(key));
    if (keys.length === 0) return false;
    // Round-robin over the queues, so no model's backlog starves another's.
    const start = this.cursor;
    this.cursor = (this.cursor + 1) % keys.length;
    for (let i = 0; i < keys.length; i++) {
      if (await this.claimFrom(keys[(start + i) % keys.length]!)) return true;
    }
    return false;
  }

  /** One claim attempt on one queue, holding a slot (and a backend slot of its model) while it runs. */
  private async claimFrom(key: string): Promise<boolean> {
    const worker = this.options.workers.get(key);
    const model = this.options.modelOfQueue?.(key) ?? splitQueueModel(key).model;
    if (!worker || worker.closing || this.stopped || this.paused || !this.hasRoom(key)) return false;
    if (!this.options.canClaim(key, this.runningPerModel.get(model) ?? 0)) return false;
    const embed = this.embedBudget(key);
    this.claiming++;
    if (embed) this.embedClaiming++;
    this.runningPerModel.set(model, (this.runningPerModel.get(model) ?? 0) + 1);
    const token = `${this.options.agentId}:${this.tokenCounter++}`;
    const announcedBefore = this.announcements.get(key) ?? 0;
    let job: Job<unknown, JobResult> | undefined;
    let failed = false;
    try {
      job = await worker.claim(token);
    } catch (error) {
      failed = true;
      this.options.logger.warn({ err: error, queue: key }, 'could not claim a job');
    } finally {
      this.claiming--;
      if (embed) this.embedClaiming--;
    }
    if (job) this.foundEmpty.delete(key);
    else if (!failed && (this.announcements.get(key) ?? 0) === announcedBefore) this.foundEmpty.add(key);
    if (!job) {
      this.runningPerModel.set(model, (this.runningPerModel.get(model) ?? 1) - 1);
      return false;
    }
    this.start(key, worker, job, token, model, embed);
    // Embed jobs are batched by what runs at once: a backlog is claimed by a growing number
    // of concurrent claims (each success adds one), not one round trip at a time, so it
    // reaches the backend in one call rather than trickling into many small ones.
    if (embed && this.hasRoom(key)) void this.claimFrom(key);
    return true;
  }

  /** Jobs of a model this scheduler has claimed and not yet settled. */
  runningOf(model: string): number {
    return this.runningPerModel.get(model) ?? 0;
  }

  /**
   * The backend is done with the job claimed under `token` (its last line came): its slot
   * counts as free from now, so the next job is claimed while this one's final writes are
   * still under way. A job holds its slot from the claim until here, or until it settles.
   */
  backendFreed(token: string): void {
    const free = this.slotHolders.get(token);
    if (!free) return;
    free();
    this.slotFreed();
  }

  /** Runs a claimed job; its model's count was taken when the claim was sent. */
  private start(key: string, worker: ModelWorker, job: Job<unknown, JobResult>, token: string, model: string, embed: boolean): void {
    this.inFlight++;
    if (embed) this.embedInFlight++;
    const freeSlot = () => {
      if (!this.slotHolders.delete(token)) return;
      this.inFlight--;
      if (embed) this.embedInFlight--;
      this.runningPerModel.set(model, (this.runningPerModel.get(model) ?? 1) - 1);
    };
    this.slotHolders.set(token, freeSlot);
    const run = worker
      .process(job, token)
      .catch((error) => this.options.logger.error({ err: error, jobId: job.id }, 'job processing failed'))
      .finally(() => {
        freeSlot();
        this.running.delete(run);
        this.claims.delete(run);
        this.slotFreed();
      });
    this.running.add(run);
    this.claims.set(run, { key, job, token });
  }

  /**
   * Stops claiming and puts every running job back at the head of its queue, its lock
   * released, without waiting for it to finish: for a shutdown past its deadline. Resolves
   * with the queue key of each job that went back. One that could not (Redis gone, or the
   * job settled meanwhile) returns by BullMQ's stalled-job check once its lock expires.
   */
  async release(): Promise<string[]> {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    const released: string[] = [];
    await Promise.all(
      [...this.claims.values()].map(async ({ key, job, token }) => {
        try {
          await job.moveToWait(token);
          released.push(key);
          await this.options.requeue?.(job.id!, { token, number: job.attemptsStarted }).catch((error: unknown) => {
            this.options.logger.warn({ err: error, jobId: job.id }, 'handed the job back, but could not record it as queued; its next claim does');
          });
        } catch (error) {
          this.options.logger.warn({ err: error, jobId: job.id }, 'could not hand the job back; it returns when its lock expires');
        }
      }),
    );
    return released;
  }

  /** Stops claiming; resolves when the jobs already running have settled. */
  async drain(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    await Promise.all([...this.running]);
  }
}
