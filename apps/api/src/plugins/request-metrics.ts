import type { FastifyInstance } from 'fastify';
import fp from 'fastify-plugin';
import { BULL_BOARD_PATH } from '../bull-board.js';
import type { ApiMetrics } from '../metrics.js';

/**
 * Counts answered requests by route template and status. Event streams count themselves
 * when they open (routes/jobs.ts), and Bull Board's polling would drown the real traffic.
 */
export const requestMetrics = fp<{ metrics: ApiMetrics }>(async (app: FastifyInstance, { metrics }) => {
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    if (route === '/v1/jobs/:id/events' || route.startsWith(BULL_BOARD_PATH)) return;
    metrics.httpRequests.inc({ method: request.method, route, status: String(reply.statusCode) });
  });
});
