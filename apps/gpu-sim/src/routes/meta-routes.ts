/** `/` (Ollama's liveness answer, also for HEAD) and `/api/version`. */
import type { FastifyInstance } from 'fastify';
import type { SimContext } from '../sim-context.js';

export function registerMetaRoutes(app: FastifyInstance, ctx: SimContext): void {
  app.get('/', async (_request, reply) => reply.type('text/plain; charset=utf-8').send('Ollama is running'));
  app.get('/api/version', async () => ({ version: ctx.config.version }));
}
