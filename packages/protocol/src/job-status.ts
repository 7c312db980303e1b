/**
 * A job's life as states and named transitions: the one table both languages read.
 *
 * The job's record in Redis (`keys.job(id)`, field `status`) holds its state; every
 * transition is one script on the job's hash slot (`packages/redis/lua/job-*.lua`) that
 * checks the record is in one of the transition's `from` states, appends the transition's
 * event to the job's stream and sets the new state, atomically. So the record and the
 * stream a client reads can never disagree, and the first terminal event wins: a job that
 * ended refuses every later transition. The scripts are given each transition's `from` and
 * `to` from this table with every call (`transitionFrom`), so the rule is written here only.
 *
 * See `packages/redis/src/job/lifecycle.ts` for who takes each transition and the writes
 * each makes in the other stores (BullMQ's queue, the admission ledger).
 */
import { JobErrorCode } from './error-codes.js';
import { JobStatus, TERMINAL_STATUSES } from './job.js';

const ACTIVE: readonly JobStatus[] = ['queued', 'loading', 'running'];

/** Each transition: the states a job may be in when it is taken, and the state it leaves the job in (`end`: one of the terminal states, chosen by the outcome). */
export const JOB_TRANSITIONS = {
  /** The API enqueued an admitted job: its record is created with the `queued` event. */
  submit: { from: [], to: 'queued' },
  /** The API told a waiting job's client where it stands (a `queued` event), only while it waits. */
  position: { from: ['queued'], to: 'queued' },
  /** An agent took the job from its queue (a retry after a lost agent appends `restarted`); the model may still be loading. */
  claim: { from: ACTIVE, to: 'loading' },
  /** The agent's backend produced the first token (the `started` event). */
  start: { from: ['loading'], to: 'running' },
  /** Tokens, from the attempt that holds the job. */
  stream: { from: ['running'], to: 'running' },
  /** The agent handed the job back to its queue (its shutdown deadline passed); the next claim is a retry. */
  requeue: { from: ['loading', 'running'], to: 'queued' },
  /** The agent's terminal event: `done`, or an `error` (its code picks failed, cancelled or expired). */
  finish: { from: ['loading', 'running'], to: 'end' },
  /**
   * The API removed a waiting job from its queue: cancelled by a client or an operator, or
   * past its deadline. From any active state: BullMQ's removal succeeded, which proves no agent
   * holds it (a job BullMQ's stalled check put back can still read `running`).
   */
  dequeue: { from: ACTIVE, to: 'end' },
  /** Maintenance found a job BullMQ gave up on (its agents died past the attempt budget) with no terminal event. */
  abandon: { from: ACTIVE, to: 'end' },
} as const satisfies Record<string, { from: readonly JobStatus[]; to: JobStatus | 'end' }>;
export type JobTransition = keyof typeof JOB_TRANSITIONS;

export function isTerminalStatus(status: JobStatus): boolean {
  return TERMINAL_STATUSES.has(status);
}

/**
 * The status a job ends in when it ends with this error code: the job record, the API's
 * answers and the ledger's outcome counts (`outcomes`: `<outcome>|<model>`) all use it.
 */
export function statusOfFailure(code: string): 'cancelled' | 'expired' | 'failed' {
  return code === JobErrorCode.cancelled ? 'cancelled' : code === JobErrorCode.deadlineExceeded ? 'expired' : 'failed';
}

/** The terminal status of a terminal event. */
export function statusOfEnd(event: { type: 'done' } | { type: 'error'; code: string }): JobStatus {
  return event.type === 'done' ? 'completed' : statusOfFailure(event.code);
}

/**
 * A job's status as its record stores it: every reader goes through this, so a value this
 * version does not know (a newer writer's, a damaged record) reads as undefined, not as a guess.
 */
export function jobStatus(stored: string | null | undefined): JobStatus | undefined {
  const parsed = JobStatus.safeParse(stored);
  return parsed.success ? parsed.data : undefined;
}

/**
 * A transition's from-states as the scripts take them (`,queued,loading,`): passed with every
 * call rather than generated into the scripts, so no script builds the table on each run.
 */
export function transitionFrom(transition: JobTransition): string {
  return `,${JOB_TRANSITIONS[transition].from.join(',')},`;
}
