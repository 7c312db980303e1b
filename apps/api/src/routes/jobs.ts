import type { FastifyInstance } from 'fastify';
import { JobRequest, TERMINAL_STATUSES } from '@switchyard/protocol';
import { ApiError, invalidRequest } from '../errors.js';
import type { ApiContext } from '../context.js';

const LAST_EVENT_ID = /^\d{1,15}$/;

/** The native job API: submit, read, stream, cancel. */
export function registerJobRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const link = (path: string) => (ctx.config.publicBaseUrl ? new URL(path, ctx.config.publicBaseUrl).toString() : path);

  app.post('/v1/jobs', async (request, reply) => {
    if (request.body === null || typeof request.body !== 'object' || Array.isArray(request.body)) {
      throw new ApiError('invalid_request', 'request body must be a JSON object');
    }
    const parsed = JobRequest.safeParse(request.body);
    if (!parsed.success) throw invalidRequest(parsed.error);
    const tenant = ctx.tenantOf(request);
    const { accepted, created } = await ctx.jobs.submit(parsed.data, tenant);
    reply.header('X-Queue-Depth', String(accepted.queue.depth));
    reply.header('Location', link(`/v1/jobs/${accepted.id}`));
    return reply.status(created ? 202 : 200).send({
      ...accepted,
      links: { self: link(`/v1/jobs/${accepted.id}`), events: link(`/v1/jobs/${accepted.id}/events`) },
    });
  });

  app.get<{ Params: { id: string } }>('/v1/jobs/:id', async (request) => {
    return ctx.jobs.get(request.params.id, ctx.tenantOf(request));
  });

  app.delete<{ Params: { id: string } }>('/v1/jobs/:id', async (request, reply) => {
    const { record, settled } = await ctx.jobs.cancel(request.params.id, ctx.tenantOf(request), ctx.config.cancelWaitMs, ctx.waitForJobEnd);
    return reply.status(settled && TERMINAL_STATUSES.has(record.status) ? 200 : 202).send(record);
  });

  app.get<{ Params: { id: string }; Querystring: { last_event_id?: string } }>('/v1/jobs/:id/events', async (request, reply) => {
    const header = request.headers['last-event-id'];
    const rawLastId = (Array.isArray(header) ? header[0] : header) ?? request.query.last_event_id;
    if (rawLastId !== undefined && rawLastId !== '' && !LAST_EVENT_ID.test(rawLastId.trim())) {
      throw new ApiError('invalid_request', `Last-Event-ID must be the seq of an event (a non-negative integer), got ${JSON.stringify(rawLastId)}`);
    }
    const afterSeq = rawLastId ? Number(rawLastId.trim()) : 0;
    const tenant = ctx.tenantOf(request);
    const entry = await ctx.jobs.locate(request.params.id, tenant);
    const jobId = request.params.id;
    const jobEnded = async () => {
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
      reply.raw.end(JSON.stringify(new ApiError('redis_unavailable', 'could not read the job events; retry shortly', 1).body()));
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
    await started.done;
    ctx.metrics.sseStreams.dec();
  });
}
