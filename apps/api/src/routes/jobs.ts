import type { FastifyInstance } from 'fastify';
import { ApiErrorCode, JobRequest, TERMINAL_STATUSES } from '@switchyard/protocol';
import { ApiError, invalidRequest, quoteInput } from '../errors.js';
import type { ApiContext } from '../context.js';
import { access } from '../access.js';

const LAST_EVENT_ID = /^\d{1,15}$/;
/** A deadline given as a header (relative, in ms), for clients that cannot change the body. */
export const TIMEOUT_HEADER = 'x-timeout-ms';
const MAX_DEADLINE_MS = 86_400_000;

/** The request's deadline from the body and the `X-Timeout-Ms` header: the sooner wins. */
export function deadlineFromHeader(headers: Record<string, string | string[] | undefined>, bodyDeadlineMs: number | undefined): number | undefined {
  const raw = headers[TIMEOUT_HEADER];
  if (raw === undefined) return bodyDeadlineMs;
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined || !/^\d{1,9}$/.test(value.trim()) || Number(value) < 1 || Number(value) > MAX_DEADLINE_MS) {
    throw new ApiError(ApiErrorCode.invalidRequest, `header X-Timeout-Ms: must be a whole number of milliseconds from 1 to ${MAX_DEADLINE_MS}, got ${quoteInput(value)}`);
  }
  return Math.min(Number(value), bodyDeadlineMs ?? Infinity);
}

/** The native job API: submit, read, stream, cancel. */
export function registerJobRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const link = (path: string) => (ctx.config.publicBaseUrl ? new URL(path, ctx.config.publicBaseUrl).toString() : path);

  app.post('/v1/jobs', access('tenant'), async (request, reply) => {
    if (request.body === null || typeof request.body !== 'object' || Array.isArray(request.body)) {
      throw new ApiError(ApiErrorCode.invalidRequest, 'request body must be a JSON object');
    }
    const parsed = JobRequest.safeParse(request.body);
    if (!parsed.success) throw invalidRequest(parsed.error);
    const deadlineMs = deadlineFromHeader(request.headers, parsed.data.deadline_ms);
    const tenant = ctx.tenantOf(request);
    const job = deadlineMs === undefined ? parsed.data : { ...parsed.data, deadline_ms: deadlineMs };
    const { accepted, created } = await ctx.jobs.submit(job, tenant);
    reply.header('X-Queue-Depth', String(accepted.queue.depth));
    reply.header('Location', link(`/v1/jobs/${accepted.id}`));
    return reply.status(created ? 202 : 200).send({
      ...accepted,
      links: { self: link(`/v1/jobs/${accepted.id}`), events: link(`/v1/jobs/${accepted.id}/events`) },
    });
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', access('tenant'), async (request) => {
    return ctx.jobs.get(request.params.id, ctx.tenantOf(request));
  });

  app.delete<{ Params: { id: string } }>('/v1/jobs/:id', access('tenant'), async (request, reply) => {
    const { record, settled } = await ctx.jobs.cancel(request.params.id, ctx.tenantOf(request), ctx.config.cancelWaitMs, ctx.waitForJobEnd);
    return reply.status(settled && TERMINAL_STATUSES.has(record.status) ? 200 : 202).send(record);
  });

  app.get<{ Params: { id: string }; Querystring: { last_event_id?: string } }>('/v1/jobs/:id/events', access('tenant'), async (request, reply) => {
    const header = request.headers['last-event-id'];
    const rawLastId = (Array.isArray(header) ? header[0] : header) ?? request.query.last_event_id;
    if (rawLastId !== undefined && rawLastId !== '' && !LAST_EVENT_ID.test(rawLastId.trim())) {
      throw new ApiError(ApiErrorCode.invalidRequest, `Last-Event-ID must be the seq of an event (a non-negative integer), got ${quoteInput(rawLastId)}`);
    }
    const afterSeq = rawLastId ? Number(rawLastId.trim()) : 0;
    const tenant = ctx.tenantOf(request);
    const entry = await ctx.jobs.locate(request.params.id, tenant);
    const jobId = request.params.id;
    const jobEnded = async () => {
      // Asked only when the job's log is empty. A job that ended always has a terminal event
      // in its log, and logs outlive their job by an hour; an empty log on a younger job means
      // its first event is still on its way (the common case of a stream opened right after
      // the submit), so skip the job lookup for it.
      if (Date.now() - entry.created_at < 3_600_000) return false;
      const record = await ctx.jobs.get(jobId, tenant).catch(() => undefined);
      return record === undefined || TERMINAL_STATUSES.has(record.status);
    };
    reply.hijack();
    let started;
    try {
      started = await ctx.relay.start(reply.raw, {
        jobId,
        afterSeq,
        heartbeatMs: ctx.config.sseHeartbeatMs,
        jobEnded,
        onEvent: (event) => ctx.observeEvent(jobId, entry.model, event),
      });
    } catch (error) {
      request.log.warn({ err: error, jobId }, 'could not open event stream');
      reply.raw.writeHead(503, { 'Content-Type': 'application/json', 'Retry-After': '1' });
      reply.raw.end(JSON.stringify(new ApiError(ApiErrorCode.redisUnavailable, 'could not read the job events; retry shortly', 1).body()));
      return;
    }
    ctx.metrics.httpRequests.inc({ method: 'GET', route: '/v1/jobs/:id/events', status: started.kind === 'stream' ? '200' : '204' });
    if (started.kind === 'nothing-more') {
      // 204 tells EventSource clients to stop reconnecting: everything was delivered.
      reply.raw.writeHead(204);
      reply.raw.end();
      return;
    }
    ctx.metrics.sseStreams.inc();
    // The job is now "streamed": if every stream of it goes away and none comes back within
    // the disconnect grace, it is cancelled (unless submitted with detach: true).
    const watch = () => ctx.ledger.watch(jobId).catch((error) => request.log.debug({ err: error, jobId }, 'could not mark the stream'));
    await watch();
    const present = await ctx.presence.hold(jobId);
    const delivered = await started.done.finally(present);
    ctx.metrics.sseStreams.dec();
    // Marked again at the close, so the grace counts from it; a stream that delivered the
    // job's end leaves nothing to cancel (and the ledger no reservation to mark).
    if (!delivered) await watch();
  });
}
