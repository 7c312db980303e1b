/**
 * The simulator's own namespace, `/sim/*` (Ollama has no such paths):
 * - `GET /sim/stats`  counters, queue, loaded models and VRAM (see sim-stats.ts);
 * - `GET /sim/config` the effective configuration, catalog included.
 */
import type { FastifyInstance } from 'fastify';
import type { SimContext } from '../sim-context.js';
import { simStats } from '../sim-stats.js';

export function registerSimRoutes(app: FastifyInstance, ctx: SimContext): void {
  app.get('/sim/stats', async () => simStats(ctx));
  app.get('/sim/config', async () => ctx.config);
}
