import type { FastifyInstance } from 'fastify';
import { TERMINAL_STATUSES } from '@switchyard/protocol';
import { access } from '../access.js';
import type { ApiContext } from '../context.js';

/**
 * Operators' verbs on any tenant's job (admin key). Bull Board is read-only: its retry re-ran
 * jobs behind the event log and admission, so these go through JobService like a tenant's
 * own requests do.
 *
 * - `DELETE /admin/jobs/:id`: cancel, queued or running — `DELETE /v1/jobs/:id` without the
 *   tenant check. 200 with the record once it ended, 202 while the agent is still stopping
 *   it, 409 `job_finished` when it had already ended.
 * - `POST /admin/jobs/:id/resubmit`: the job's request again as a NEW job of the same
 *   tenant (fresh id, no idempotency key, admission applies). 202 like `POST /v1/jobs`, plus
 *   `tenant` and `resubmitted_from`; 409 `job_finished` when the request is no longer stored.
 */
export function registerAdminJobRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const link = (path: string) => (ctx.config.publicBaseUrl ? new URL(path, ctx.config.publicBaseUrl).toString() : path);

  app.delete<{ Params: { id: string } }>('/admin/jobs/:id', access('admin'), async (request, reply) => {
    const { record, settled, tenant } = await ctx.jobs.cancelAsOperator(request.params.id, ctx.config.cancelWaitMs, ctx.waitForJobEnd);
    request.log.info({ jobId: record.id, tenant, status: record.status }, 'job cancelled by an operator');
    return reply.status(settled && TERMINAL_STATUSES.has(record.status) ? 200 : 202).send({ ...record, tenant });
  });

  app.post<{ Params: { id: string } }>('/admin/jobs/:id/resubmit', access('admin'), async (request, reply) => {
    const { accepted, tenant } = await ctx.jobs.resubmit(request.params.id);
    reply.header('X-Queue-Depth', String(accepted.queue.depth));
    reply.header('Location', link(`/v1/jobs/${accepted.id}`));
    return reply.status(202).send({
      ...accepted,
      tenant,
      resubmitted_from: request.params.id,
      links: { self: link(`/v1/jobs/${accepted.id}`), events: link(`/v1/jobs/${accepted.id}/events`) },
    });
  });
}
