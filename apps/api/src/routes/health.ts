import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.js';
import { access } from '../access.js';
import { withinMs } from '../scrape-guard.js';

export function registerHealthRoutes(app: FastifyInstance, ctx: ApiContext): void {
  /** Liveness: the process answers. `pid` says which process: a launcher tells its own API from another on the port. */
  app.get('/healthz', access('public'), async () => ({ status: 'ok', pid: process.pid }));

  /** Readiness: Redis answers a PING within a second; otherwise 503 so a balancer skips this replica. */
  app.get('/readyz', access('public'), async (_request, reply) => {
    // A stopping replica fails readiness first, while it still serves what it has.
    if (ctx.lifecycle.draining) return reply.status(503).send({ status: 'draining', redis: 'not checked' });
    try {
      await withinMs(ctx.redis.ping(), 1_000);
      return { status: 'ready', redis: 'ok' };
    } catch (error) {
      return reply.status(503).send({ status: 'not_ready', redis: (error as Error).message });
    }
  });

  app.get('/metrics', access('admin'), async (_request, reply) => {
    const body = await ctx.metrics.registry.metrics();
    return reply.header('Content-Type', ctx.metrics.registry.contentType).send(body);
  });
}
