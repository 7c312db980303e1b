/**
 * Which cold models' queues a placement round reads. Reading every cold model's queues every
 * round was the agents' main Redis load (two BullMQ count scripts per model per round: ~8 000
 * a second from six agents in bench:fleet), and almost all of them are empty. So a round
 * reads the models announced (the API's new-work message) since their queues were last read
 * empty, and every model once per `fullReadMs`, for work nobody announces (a retried job, a
 * stalled one put back).
 *
 * Times come from a monotonic clock: a wall clock stepped back would stop the full reads.
 */
export class WorkAnnouncements {
  /** Model → when it was last announced (or last read with work waiting). */
  private readonly marks = new Map<string, number>();
  private lastFullReadAt = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly fullReadMs: number,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  announce(model: string): void {
    this.marks.set(model, this.clock());
  }

  /** Which of `models` a round should read now; pass the plan to `settle` once the read succeeded. */
  plan(models: readonly string[]): ReadPlan {
    const at = this.clock();
    const full = at - this.lastFullReadAt >= this.fullReadMs;
    return { at, full, models: full ? [...models] : models.filter((model) => this.marks.has(model)) };
  }

  /**
   * Records what a successful read found. A model read with nothing waiting is forgotten
   * unless it was announced after the read began (that job may have been missed); one
   * with work waiting stays marked, so it is read every round until its queue is empty.
   * `known` drops marks of models the backend no longer offers, which nothing would read.
   */
  settle(plan: ReadPlan, waitingOf: (model: string) => number, known: (model: string) => boolean): void {
    if (plan.full) {
      this.lastFullReadAt = plan.at;
      for (const model of this.marks.keys()) if (!known(model)) this.marks.delete(model);
    }
    for (const model of plan.models) {
      const markedAt = this.marks.get(model);
      if (waitingOf(model) > 0) this.marks.set(model, markedAt ?? plan.at);
      else if (markedAt !== undefined && markedAt < plan.at) this.marks.delete(model);
    }
  }
}

export interface ReadPlan {
  /** When the read began (monotonic clock). */
  at: number;
  /** Every model is read (the periodic full read). */
  full: boolean;
  models: string[];
}
