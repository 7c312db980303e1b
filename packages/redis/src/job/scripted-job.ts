import type { RedisConnection } from '../connection.js';
import type { JobResult, RedisKeys, StreamEventBody } from '@switchyard/protocol';
import { EventLog } from '../event-log.js';
import { AdmissionLedger } from '../admission-ledger.js';
import { defineScripts } from '../scripts.js';
import { JobLifecycle, type Attempt, type TransitionOutcome } from './lifecycle.js';

/**
 * Plays a job's writers without BullMQ, for tests and benchmarks that stand in for the API
 * or an agent: each event goes through the transition that writes it in production (a
 * `queued` first creates the record like `submit`, a later one is a `position` update;
 * `started` claims and starts; `token` streams; `done`/`error` finish). The transitions'
 * rules apply as they do in production: an event the job's state does not allow is refused
 * (except a token for a job not started, and a job with no record: see `write`). A job an agent holds is written as
 * that agent's attempt (its token read from the record), so a test can inject an event into
 * a real agent's job and the agent goes on as if it had written it.
 */
export class ScriptedJobs {
  readonly lifecycle: JobLifecycle;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: RedisKeys,
    private readonly attemptToken = 'scripted',
  ) {
    defineScripts(redis);
    this.lifecycle = new JobLifecycle(redis, keys, new AdmissionLedger(redis, keys));
  }

  /** A job's record and its first event, as `submit` writes them (no BullMQ job). */
  async create(
    jobId: string,
    fields: { model: string; tenant?: string },
    queued: Extract<StreamEventBody, { type: 'queued' }> = { type: 'queued', position: 0, depth: 1 },
  ): Promise<number> {
    const [seq] = await this.redis.sy_job_submit_v2(
      this.keys.job(jobId),
      this.keys.jobEvents(jobId),
      'queued',
      3600,
      3600,
      100_000,
      JSON.stringify(queued),
      ...['model', fields.model, 'tenant', fields.tenant ?? 'default', 'created_at', String(Date.now())],
    );
    return seq;
  }

  /** Writes one event through its transition; resolves with the seq (0 when refused). */
  async append(jobId: string, event: StreamEventBody, model = 'scripted-model:latest'): Promise<number> {
    const outcome = await this.write(jobId, event, model);
    return outcome.taken ? outcome.seq : 0;
  }

  private async write(jobId: string, event: StreamEventBody, model: string): Promise<TransitionOutcome> {
    const { lifecycle } = this;
    const record = this.keys.job(jobId);
    let [status, held] = await this.redis.hmget(record, 'status', 'attempt');
    if (status === null && event.type === 'queued') return { taken: true, seq: await this.create(jobId, { model }, event), status: 'queued' };
    if (status === null) {
      // A job with no record (a test that starts mid-life) gets one, without an event of its
      // own, in the state the event is written from: the event's seq is then the stream's first.
      status = event.type === 'started' ? 'loading' : event.type === 'restarted' ? 'queued' : 'running';
      held = this.attemptToken;
      await this.redis.hset(record, 'model', model, 'tenant', 'default', 'created_at', String(Date.now()), 'status', status, 'attempt', held);
      await this.redis.expire(record, 3600);
    }
    const attempt = (number = 1): Attempt => ({ token: held ?? this.attemptToken, number });
    switch (event.type) {
      case 'queued':
        return lifecycle.position(jobId, event);
      case 'restarted':
        return lifecycle.claim(jobId, 'scripted-agent', attempt(event.attempt), event.reason);
      case 'resumed':
        // The claim writes the event itself, with the stream's own last seq as `after_seq`.
        return lifecycle.claim(jobId, 'scripted-agent', attempt(event.attempt), 'agent_lost', undefined, { resume: true });
      case 'started':
        if (status === 'queued') await lifecycle.claim(jobId, event.agent, attempt(), 'agent_lost');
        return lifecycle.start(jobId, attempt(), event);
      case 'token':
      case 'tool_call':
        // A token for a job that has not started is written as if it had: the record is put
        // in `running` directly, without a `started` event (tests of the relay need no more).
        if (status !== 'running') await this.redis.hset(record, 'status', 'running', 'attempt', attempt().token);
        return lifecycle.stream(jobId, attempt(), event);
      case 'done':
      case 'error':
        if (status === 'queued') {
          // A waiting job's ending is the API's (a cancel or an expiry); a later one is its agent's.
          if (event.type === 'error') return lifecycle.dequeue(jobId, event, undefined);
          await lifecycle.claim(jobId, 'scripted-agent', attempt(), 'agent_lost');
        }
        return lifecycle.finish(jobId, attempt(), event, event.type === 'done' ? await this.resultOf(jobId, event) : undefined);
    }
  }

  /** A `done`'s result as an agent would send it: the text of the tokens since the last (re)start. */
  private async resultOf(jobId: string, done: Extract<StreamEventBody, { type: 'done' }>): Promise<JobResult> {
    let text = '';
    let agent = 'scripted-agent';
    for (const event of await new EventLog(this.redis, this.keys).readAfter(jobId, 0)) {
      if (event.type === 'restarted') text = '';
      if (event.type === 'started') agent = event.agent;
      if (event.type === 'token') text += event.text;
    }
    return { text, finish_reason: done.finish_reason, usage: done.usage, timings: done.timings, agent };
  }
}
