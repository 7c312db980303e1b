import { isCluster, type RedisConnection } from '../connection.js';
import type { JobsOptions } from 'bullmq';
import {
  JOB_TRANSITIONS,
  jobStatus,
  statusOfEnd,
  transitionFrom,
  type JobData,
  type JobRequest,
  type JobResult,
  type JobStatus,
  type JobTransition,
  type RedisKeys,
  type StreamEventBody,
} from '@switchyard/protocol';
import type { AdmissionLedger } from '../admission-ledger.js';
import { EventLog } from '../event-log.js';
import type { ModelQueue } from '../queue-registry.js';
import { defineScripts, type JobTransitionReply } from '../scripts.js';

/**
 * A job's life, in one place: every transition of the table in
 * `packages/protocol/src/job-status.ts`, with the writes it makes in each store.
 *
 *   submit ──► queued ──claim──► loading ──start──► running ──stream…
 *                ▲ ◄───────requeue (an agent's shutdown hands it back)──┤
 *                ├─dequeue─► cancelled | expired    loading, running ─finish─► completed | failed | cancelled | expired
 *                └─ abandon (from any active state, when BullMQ gave up on the job) ─► failed
 *
 * A job's state lives in three stores, each with one job:
 * - **the job record and its event stream** (`keys.job(id)`, `keys.jobEvents(id)`: one hash
 *   slot, the job id's tag): the state a client reads. Every transition is one script there
 *   (`lua/job-*.lua`) that checks the transition may be taken, appends its event, publishes it
 *   and sets the state, atomically; so the stream and the record never disagree, and the
 *   first terminal event wins.
 * - **BullMQ's queue** (the queue's slot): which agent holds the job, its lock and its
 *   retries. BullMQ's own scripts write it: `submit` adds the job, an agent's claim is BullMQ's
 *   moveToActive, `finish` is the processor's return (moveToFinished), `dequeue` is a removal.
 * - **the admission ledger** (`{adm}`): the counts admission checks. `submit` follows the
 *   ledger's reservation (`AdmissionLedger.admit`, in the API before it), `start` moves the
 *   reservation from queued to running (sent with the transition's script, on the same
 *   connection) and an ending that was taken releases it (right after). A ledger write is a
 *   second script because it is another slot under Redis Cluster; it never fails the
 *   transition: the API's reconciliation repairs a ledger write that was lost.
 *
 * Agents' writes carry their attempt (BullMQ's lock token of the run): a transition from an
 * attempt that no longer holds the job is refused (`fenced`), so an agent that was paused
 * while its job moved elsewhere cannot write into the job's stream.
 */
export interface JobLifecycleOptions {
  /** How long a job's record lives: its retention (set by `enqueue`, so only the API's matters). */
  recordTtlSeconds?: number;
  /** Upper bound on events kept per job; a long generation is coalesced well below it. */
  maxEvents?: number;
  /** How long an unfinished job's stream lives (from its submission). */
  liveTtlSeconds?: number;
  /** How long a finished job's stream stays readable for late reconnects. */
  finishedTtlSeconds?: number;
}

/** The outcome of a transition: taken (with its event's seq), or refused and why. */
export type TransitionOutcome =
  /** `adopted`: a claim that created the job's record (a job enqueued without one). */
  | { taken: true; seq: number; status: JobStatus; adopted?: true; /** A continuing claim's `resumed.after_seq`: the text up to it stands. */ resumedAfter?: number }
  /** `missing`: no record; `state`: the job is not in a state the transition starts from (it ended); `fenced`: another attempt holds it. */
  | { taken: false; why: 'missing' | 'state' | 'fenced'; status?: JobStatus };

/** An agent's hold on a job: the attempt's token (BullMQ's lock token) and the attempt number. */
export interface Attempt {
  token: string;
  number: number;
}

export interface EnqueueRequest {
  queue: ModelQueue;
  data: JobData;
  /** BullMQ priority: the admission script's, from the job's virtual start time. */
  priority: number;
  /** Queue key when it differs from the model (a digest-pinned job). */
  queueKey: string;
  queued: Extract<StreamEventBody, { type: 'queued' }>;
}

type TerminalEvent = Extract<StreamEventBody, { type: 'done' | 'error' }>;

export class JobLifecycle {
  private readonly maxEvents: number;
  private readonly liveTtlSeconds: number;
  private readonly finishedTtlSeconds: number;
  private readonly recordTtlSeconds: number;
  private readonly log: EventLog;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: RedisKeys,
    private readonly ledger: AdmissionLedger,
    options: JobLifecycleOptions = {},
  ) {
    this.recordTtlSeconds = options.recordTtlSeconds ?? 24 * 3600;
    this.log = new EventLog(redis, keys);
    this.maxEvents = options.maxEvents ?? 100_000;
    this.liveTtlSeconds = options.liveTtlSeconds ?? 24 * 3600;
    this.finishedTtlSeconds = options.finishedTtlSeconds ?? 3600;
    defineScripts(redis);
  }

  /** BullMQ's options for a job: retries only for a lost agent (every other failure is final), kept for the retention. */
  private bullOptions(jobId: string, priority: number): JobsOptions {
    const retention = this.recordTtlSeconds;
    return {
      jobId,
      // Agents take the lowest priority number first.
      priority,
      attempts: 2,
      backoff: { type: 'fixed', delay: 1_000 },
      removeOnComplete: { age: retention, count: 100_000 },
      removeOnFail: { age: retention, count: 100_000 },
    };
  }

  /**
   * `submit`, after admission reserved: the record with the `queued` event, then BullMQ's add.
   * On one Redis they are sent together (one round trip; Redis runs one connection's
   * commands in the order sent, so an agent that claims the job finds its record). Under
   * Redis Cluster they go to different nodes, which run them in no particular order, so the
   * add waits for the record (a round trip more): an agent could otherwise claim the job
   * before its record exists, adopt it, and then see the submit overwrite its status. If
   * either fails, everything the submit wrote goes, the reservation included, and the error
   * is thrown: nothing is half-created.
   */
  async enqueue(request: EnqueueRequest): Promise<void> {
    const { data, queue } = request;
    const id = data.id;
    const fields = ['model', data.model, 'tenant', data.tenant, 'created_at', String(data.submitted_at)];
    if (request.queueKey !== data.model) fields.push('queue', request.queueKey);
    const record = () =>
      this.redis.sy_job_submit_v2(
        this.keys.job(id),
        this.keys.jobEvents(id),
        JOB_TRANSITIONS.submit.to,
        this.recordTtlSeconds,
        this.liveTtlSeconds,
        this.maxEvents,
        JSON.stringify(request.queued),
        ...fields,
      );
    const add = () => queue.add('generate', data, this.bullOptions(id, request.priority));
    let failure: { reason: unknown } | undefined;
    if (isCluster(this.redis)) {
      try {
        await record();
        await add();
      } catch (error) {
        failure = { reason: error };
      }
    } else {
      const [recorded, added] = await Promise.allSettled([record(), add()]);
      if (recorded.status === 'rejected') failure = { reason: recorded.reason };
      else if (added.status === 'rejected') failure = { reason: added.reason };
    }
    if (failure) {
      await Promise.allSettled([this.redis.del(this.keys.job(id), this.keys.jobEvents(id)), queue.remove(id), this.ledger.release(id, 'aborted')]);
      throw failure.reason;
    }
  }

  /** `position`: a waiting job's `queued` update; refused once the job left its queue. */
  async position(jobId: string, queued: Extract<StreamEventBody, { type: 'queued' }>): Promise<TransitionOutcome> {
    return this.event(jobId, 'position', queued);
  }

  /**
   * `claim`: an agent took the job from its queue. A retry (attempt > 1) appends `restarted`.
   * Refused (`state`) when the job already ended: the agent drops it without running it. A
   * job without a record (enqueued by an older API, or by hand) is adopted: `data` (the
   * BullMQ job's, as stored) gives its record's model, tenant and submission time.
   */
  async claim(jobId: string, agent: string, attempt: Attempt, restartedReason: string, data?: unknown, options: { resume?: boolean } = {}): Promise<TransitionOutcome> {
    const resume = attempt.number > 1 && options.resume === true;
    const restarted = attempt.number > 1 && !resume ? JSON.stringify({ type: 'restarted', reason: restartedReason, attempt: attempt.number }) : '';
    const stored = (typeof data === 'object' && data !== null ? data : {}) as Record<string, unknown>;
    const text = (value: unknown, fallback: string) => (typeof value === 'string' && value !== '' ? value : fallback);
    const adoption = {
      fields: { model: text(stored.model, 'unknown'), tenant: text(stored.tenant, 'unknown'), created_at: String(Number(stored.submitted_at) || Date.now()) },
      recordTtl: this.recordTtlSeconds,
      eventsTtl: this.liveTtlSeconds,
    };
    const reply = await this.redis.sy_job_claim_v2(
      this.keys.job(jobId),
      this.keys.jobEvents(jobId),
      CLAIM_FROM,
      JOB_TRANSITIONS.claim.to,
      attempt.token,
      agent,
      this.keys.jobChannel(jobId),
      this.maxEvents,
      restarted,
      JSON.stringify(adoption),
      resume ? String(attempt.number) : '',
    );
    return outcomeOf(reply);
  }

  /**
   * `start`: the first token came (the `started` event); the ledger's reservation moves to
   * running with it. (For a job adopted at its claim, this event may create the stream; the
   * script gives it its expiry then.)
   */
  async start(jobId: string, attempt: Attempt, started: Extract<StreamEventBody, { type: 'started' }>): Promise<TransitionOutcome> {
    const outcome = await this.event(jobId, 'start', started, attempt, this.liveTtlSeconds);
    // Only a start that was taken moves the reservation (a fenced attempt's must not count its
    // load or wait). A failed ledger write is not the job's failure: reconciliation repairs it.
    if (outcome.taken) await this.ledger.started(jobId, { cold: started.cold, loadMs: started.load_ms }).catch(() => false);
    return outcome;
  }

  /** `stream`: tokens and tool calls from the attempt that holds the job. */
  async stream(jobId: string, attempt: Attempt, output: Extract<StreamEventBody, { type: 'token' | 'tool_call' }>): Promise<TransitionOutcome> {
    return this.event(jobId, 'stream', output, attempt);
  }

  /**
   * The text the job's client holds up to `upToSeq`: its tokens since the last `restarted`
   * (which voids what came before; `resumed` does not). What a continuing attempt continues.
   */
  async streamedText(jobId: string, upToSeq: number): Promise<string> {
    let text = '';
    for (const event of await this.log.readAfter(jobId, 0)) {
      if (event.seq > upToSeq) break;
      if (event.type === 'restarted') text = '';
      else if (event.type === 'token') text += event.text;
    }
    return text;
  }

  /** `requeue`: the agent handed the job back to its queue (after BullMQ's moveToWait); its next claim is a retry. */
  async requeue(jobId: string, attempt: Attempt): Promise<TransitionOutcome> {
    return this.event(jobId, 'requeue', undefined, attempt);
  }

  /**
   * `finish`: the agent's terminal event (`done` with the job's result, or `error`), and the
   * end of its admission reservation (resolved with it unless `waitForLedger: false`).
   */
  async finish(jobId: string, attempt: Attempt, event: TerminalEvent, result?: JobResult, options: { waitForLedger?: boolean } = {}): Promise<TransitionOutcome> {
    return this.end(jobId, 'finish', event, { attempt: attempt.token, ...(result && { result: JSON.stringify(result) }) }, options.waitForLedger !== false);
  }

  /**
   * `dequeue`: the API removed a waiting job from its queue (after BullMQ's removal
   * succeeded, so no agent holds it): cancelled or expired. Its request is kept in the
   * record (BullMQ's copy went with the job) so an operator can resubmit it.
   */
  async dequeue(jobId: string, event: Extract<StreamEventBody, { type: 'error' }>, request: JobRequest | undefined): Promise<TransitionOutcome> {
    return this.end(jobId, 'dequeue', event, request === undefined ? {} : { request: JSON.stringify(request) });
  }

  /** `abandon`: BullMQ gave up on a job with no terminal event (its agents died past the attempt budget). */
  async abandon(jobId: string, event: Extract<StreamEventBody, { type: 'error' }>): Promise<TransitionOutcome> {
    return this.end(jobId, 'abandon', event, {});
  }

  private async event(
    jobId: string,
    transition: Extract<JobTransition, 'position' | 'start' | 'stream' | 'requeue'>,
    event: StreamEventBody | undefined,
    attempt?: Attempt,
    ttl?: number,
  ): Promise<TransitionOutcome> {
    const reply = await this.redis.sy_job_event_v2(
      this.keys.job(jobId),
      this.keys.jobEvents(jobId),
      EVENT_FROM[transition],
      JOB_TRANSITIONS[transition].to,
      attempt?.token ?? '',
      this.keys.jobChannel(jobId),
      this.maxEvents,
      ttl ?? '',
      event === undefined ? '' : JSON.stringify(event),
    );
    return outcomeOf(reply);
  }

  private async end(
    jobId: string,
    transition: Extract<JobTransition, 'finish' | 'dequeue' | 'abandon'>,
    event: TerminalEvent,
    { attempt, ...set }: { attempt?: string; result?: string; request?: string },
    waitForLedger = true,
  ): Promise<TransitionOutcome> {
    const fields = Object.entries(set).flatMap(([field, value]) => (value === undefined ? [] : [field, value]));
    if (event.type === 'error') fields.push('error', JSON.stringify({ code: event.code, message: event.message }));
    const status = statusOfEnd(event);
    const reply = await this.redis.sy_job_finish_v2(
      this.keys.job(jobId),
      this.keys.jobEvents(jobId),
      END_FROM[transition],
      status,
      attempt ?? '',
      this.keys.jobChannel(jobId),
      this.maxEvents,
      this.finishedTtlSeconds,
      JSON.stringify(event),
      ...fields,
    );
    // The same ending again from the attempt that wrote it (ioredis resends a command a Redis
    // restart cut off): the job ended as this writer says, so it is answered as taken. Only
    // that attempt could have written it: another one's refusal is `fenced`.
    if (reply[0] === 0 && reply[1] === 'state' && attempt !== undefined && reply[2] === status) return { taken: true, seq: 0, status };
    // Only the ending that was taken releases: a fenced writer's job still runs elsewhere and
    // keeps its reservation. A failed ledger write is repaired by the API's reconciliation.
    if (reply[0] !== 0) {
      const release = transition === 'abandon' ? this.ledger.release(jobId, 'reconciled') : this.ledger.release(jobId, event.type, event.type === 'error' ? event.code : '');
      // An agent need not wait for it: BullMQ's move of the job can go out meanwhile.
      if (waitForLedger) await release.catch(() => false);
      else release.catch(() => false);
    }
    return outcomeOf(reply);
  }
}

/** Each transition's from-states as its script takes them, computed once. */
const CLAIM_FROM = transitionFrom('claim');
const EVENT_FROM = { position: transitionFrom('position'), start: transitionFrom('start'), stream: transitionFrom('stream'), requeue: transitionFrom('requeue') };
const END_FROM = { finish: transitionFrom('finish'), dequeue: transitionFrom('dequeue'), abandon: transitionFrom('abandon') };

function outcomeOf(reply: JobTransitionReply): TransitionOutcome {
  if (reply[0] === 0) {
    const [, why, stored] = reply as [0, 'missing' | 'state' | 'fenced', string];
    const status = jobStatus(stored);
    return { taken: false, why, ...(status !== undefined && { status }) };
  }
  const [seq, status, adopted, after] = reply;
  return {
    taken: true,
    seq,
    status: jobStatus(status) ?? 'queued',
    ...(adopted === 'adopted' && { adopted: true as const }),
    ...(after !== undefined && seq > 1 && after > 0 && { resumedAfter: Number(after) }),
  };
}
