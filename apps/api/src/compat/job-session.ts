import type { FastifyReply, FastifyRequest } from 'fastify';
import { CompatErrorCode, isTerminalEvent, type JobRequest, type StreamEvent } from '@switchyard/protocol';
import type { ApiContext } from '../context.js';
import { collectAnswer, type CollectedAnswer } from './collect-answer.js';
import { CompatError, invalidParam } from './compat-error.js';

/**
 * One compatibility request's job: submitted, its events as an async iterable, and
 * cancelled as soon as the client goes away.
 *
 * The OpenAI and Ollama wires have no resume, so a closed connection means nobody will
 * ever read the answer: the job is cancelled at once (queued jobs never reach a GPU,
 * running ones free their slot), unlike the native API where a client may reconnect.
 */
export interface JobSession extends AsyncIterable<StreamEvent> {
  readonly id: string;
  /** Canonical model name the job was queued for. */
  readonly model: string;
  /** True once the client closed the connection before the answer was complete. */
  readonly clientGone: boolean;
  /** Marks the answer complete, so a later connection close is not a cancellation. */
  finish(): void;
  /** Stops reading events and cancels the job unless it ended (client-side failures). */
  abandon(reason: string): void;
}

/** The tenant of an inference request on a compatibility wire, whose body must be a JSON object. */
export async function compatRequestTenant(ctx: ApiContext, request: FastifyRequest): Promise<string> {
  const tenant = await ctx.tenantOf(request);
  if (request.body === null || typeof request.body !== 'object' || Array.isArray(request.body)) {
    throw invalidParam(null, 'request body must be a JSON object');
  }
  return tenant;
}

/**
 * The whole answer of a non-streaming request. The job is cancelled if reading fails;
 * `undefined` when the client went away (its job cancelled): the reply is then closed, as
 * there is nobody to answer.
 */
export async function collectSessionAnswer(session: JobSession, reply: FastifyReply): Promise<CollectedAnswer | undefined> {
  let collected;
  try {
    collected = await collectAnswer(session);
  } catch (error) {
    session.abandon('answer failed');
    throw error;
  }
  session.finish();
  if (!collected) {
    reply.hijack();
    if (!reply.raw.writableEnded) reply.raw.end();
  }
  return collected;
}

/** Submits the job and opens its event feed; nothing is written to the reply. */
export async function startJobSession(ctx: ApiContext, request: FastifyRequest, reply: FastifyReply, job: JobRequest, tenant: string): Promise<JobSession> {
  const { accepted } = await ctx.jobs.submit(job, tenant);
  const jobId = accepted.id;
  const queue = new EventQueue();
  let ended = false; // a terminal event arrived
  let finished = false;
  let clientGone = false;
  const cancel = (reason: string) => {
    if (ended) return;
    ended = true;
    request.log.info({ jobId, reason }, 'cancelling the job of a compatibility request');
    // On the system's behalf: no waiting for the agent's confirmation; a job that ended on
    // its own meanwhile is left as it is.
    ctx.jobs.cancelAbandoned(jobId, 'compat_disconnect').catch((error: unknown) => {
      request.log.warn({ err: error, jobId }, 'could not cancel the job of a gone client');
    });
  };

  let openFeed;
  try {
    openFeed = await ctx.feed.open(
      {
        jobId,
        afterSeq: 0,
        onEvent: (event) => {
          ctx.observeEvent(jobId, accepted.model, event);
          if (isTerminalEvent(event)) ended = true;
          queue.push(event);
        },
        onEnd: (reason) =>
          queue.end(
            reason === 'error'
              ? new CompatError(503, CompatErrorCode.eventsUnavailable, 'lost the job event stream (queue store unavailable); the job was cancelled')
              : undefined,
          ),
      },
      // No `jobEnded`: this request submitted the job a moment ago, so an empty log means its
      // first event is on its way, never that the job is over.
    );
  } catch (error) {
    cancel('could not open the event feed');
    throw error;
  }

  // 'close' fires on the response when it completes and when the connection drops first.
  const onClose = () => {
    if (finished || clientGone) return;
    clientGone = true;
    openFeed.close();
    cancel('client closed the connection');
  };
  reply.raw.on('close', onClose);
  // The client may have gone while the job was being submitted.
  if (request.raw.socket?.destroyed) onClose();
  openFeed.start();

  return {
    id: jobId,
    model: accepted.model,
    get clientGone() {
      return clientGone;
    },
    finish: () => {
      finished = true;
      openFeed.close();
    },
    abandon: (reason) => {
      finished = true;
      openFeed.close();
      cancel(reason);
    },
    [Symbol.asyncIterator]: () => queue.iterate(),
  };
}

/** A push-to-pull bridge: the feed pushes events, the route handler pulls them in order. */
class EventQueue {
  private readonly items: StreamEvent[] = [];
  private done = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;

  push(event: StreamEvent): void {
    if (this.done) return;
    this.items.push(event);
    this.notify();
  }

  end(failure?: Error): void {
    if (this.done) return;
    this.done = true;
    this.failure = failure;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *iterate(): AsyncGenerator<StreamEvent> {
    for (;;) {
      const next = this.items.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.done) {
        if (this.failure) throw this.failure;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}
