import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.js';

/** What the fleet can serve and who is in it. */
export function registerFleetRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get('/v1/models', async () => {
    const [servable, counts] = await Promise.all([ctx.fleet.servableModels(), ctx.jobs.queueCounts()]);
    const names = new Set([...servable.keys(), ...counts.keys()]);
    const data = [...names].sort().map((name) => {
      const fleet = servable.get(name);
      const count = counts.get(name) ?? {};
      return {
        id: name,
        servable: fleet !== undefined,
        size_bytes: fleet?.size_bytes ?? null,
        digests: fleet?.digests ?? [],
        agents: fleet?.agents ?? [],
        loaded_on: fleet?.loadedOn ?? [],
        queue: {
          waiting: (count.waiting ?? 0) + (count.prioritized ?? 0) + (count.delayed ?? 0),
          active: count.active ?? 0,
        },
      };
    });
    return { object: 'list', data };
  });

  app.get('/v1/agents', async () => {
    const agents = await ctx.fleet.agents();
    return { object: 'list', data: agents.sort((a, b) => a.id.localeCompare(b.id)) };
  });
}
