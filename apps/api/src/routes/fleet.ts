import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.js';
import { modelCreatedAt } from '../compat/model-info.js';
import { access } from '../access.js';
import { queuesByModel } from '../fleet-view.js';
import { modelFigures, queueFigures } from '../queue-figures.js';

/** What the fleet can serve and who is in it. */
export function registerFleetRoutes(app: FastifyInstance, ctx: ApiContext): void {
  /**
   * One entry per model a live agent serves now: every id in the list can be used (and
   * `GET /v1/models/{id}` answers it). Digest-pinned queues (`model@digest`) are internal:
   * their jobs are counted in their model's `queue`, per digest in `queue.pinned`, and the
   * digests themselves are in `digests`. Queues of models no live agent serves are not
   * models anyone can use, so they are not listed (`switchyard queues` and the metrics
   * still show jobs waiting in them via Bull Board and `switchyard_queue_depth`).
   */
  app.get('/v1/models', access('tenant'), async (request) => {
    ctx.tenantOf(request); // any valid key may list models
    const [servable, counts] = await Promise.all([ctx.fleet.servableModels(), ctx.jobs.queueCounts()]);
    const queues = queuesByModel(counts.keys());
    const names = [...servable.keys()].sort();
    const queueKeys = names.flatMap((name) => (queues.get(name) ?? []).map((queue) => queue.queueKey));
    const [created, ledger] = await Promise.all([modelCreatedAt(ctx, names), ctx.admission.modelStats(queueKeys)]);
    const figures = queueFigures(counts, ledger, Date.now());
    const data = names.map((name) => {
      const fleet = servable.get(name)!;
      const own = queues.get(name) ?? [];
      const pinned = own.filter((queue) => queue.digest !== undefined).map((queue) => ({ digest: queue.digest!, ...figures(queue.queueKey) }));
      const all = own.map((queue) => figures(queue.queueKey));
      return {
        id: name,
        // OpenAI's model object fields (openai-node's models.list() reads these).
        object: 'model',
        created: Math.floor((created.get(name) ?? 0) / 1000),
        owned_by: 'switchyard',
        servable: true,
        size_bytes: fleet.size_bytes,
        digests: fleet.digests,
        agents: fleet.agents,
        loaded_on: fleet.loadedOn,
        loading_on: fleet.loadingOn,
        // The model's figures over all its queues (its own and its pinned ones).
        queue: { ...modelFigures(all), pinned },
      };
    });
    return { object: 'list', data };
  });

  app.get('/v1/agents', access('admin'), async () => {
    const agents = await ctx.fleet.agents();
    return { object: 'list', data: agents.sort((a, b) => a.id.localeCompare(b.id)) };
  });
}
