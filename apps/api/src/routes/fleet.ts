import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.js';
import { modelCreatedAt } from '../compat/model-info.js';
import { access } from '../access.js';

/** What the fleet can serve and who is in it. */
export function registerFleetRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/v1/models', access('tenant'), async (request) => {
    ctx.tenantOf(request); // any valid key may list models
    const [servable, counts] = await Promise.all([ctx.fleet.servableModels(), ctx.jobs.queueCounts()]);
    const names = new Set([...servable.keys(), ...counts.keys()]);
    const [created, ledger] = await Promise.all([modelCreatedAt(ctx, [...names]), ctx.admission.modelStats([...names])]);
    const now = Date.now();
    const data = [...names].sort().map((name) => {
      const fleet = servable.get(name);
      const count = counts.get(name);
      const stats = ledger.get(name);
      return {
        id: name,
        // OpenAI's model object fields (openai-node's models.list() reads these).
        object: 'model',
        created: Math.floor((created.get(name) ?? 0) / 1000),
        owned_by: 'switchyard',
        servable: fleet !== undefined,
        size_bytes: fleet?.size_bytes ?? null,
        digests: fleet?.digests ?? [],
        agents: fleet?.agents ?? [],
        loaded_on: fleet?.loadedOn ?? [],
        loading_on: fleet?.loadingOn ?? [],
        queue: {
          waiting: count?.waiting ?? 0,
          active: count?.active ?? 0,
          // Backpressure at a glance: what the depth limit counts (admitted, not started yet;
          // also jobs an agent has claimed and is still loading for, until seen), how long the
          // longest-waiting job has waited, and the measured completions per second that
          // Retry-After and ETAs are computed from.
          depth: stats?.depth ?? 0,
          oldest_wait_s: stats?.oldestSubmittedAt !== undefined ? Math.round((now - stats.oldestSubmittedAt) / 100) / 10 : 0,
          drain_rate_per_s: Math.round((stats?.drainPerS ?? 0) * 1000) / 1000,
        },
      };
    });
    return { object: 'list', data };
  });

  app.get('/v1/agents', access('admin'), async () => {
    const agents = await ctx.fleet.agents();
    return { object: 'list', data: agents.sort((a, b) => a.id.localeCompare(b.id)) };
  });
}
