import type { FastifyInstance } from 'fastify';
import type { ApiContext } from '../context.js';
import { modelCreatedAt } from '../compat/model-info.js';
import { access } from '../access.js';
import { queuesByModel } from '../fleet-view.js';

interface QueueFigures {
  waiting: number;
  active: number;
  depth: number;
  oldest_wait_s: number;
  drain_rate_per_s: number;
}

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
    const now = Date.now();
    const figures = (queueKey: string): QueueFigures => {
      const count = counts.get(queueKey);
      const stats = ledger.get(queueKey);
      return {
        waiting: count?.waiting ?? 0,
        active: count?.active ?? 0,
        // Backpressure at a glance: what the depth limit counts (admitted, not started yet;
        // also jobs an agent has claimed and is still loading for, until seen), how long the
        // longest-waiting job has waited, and the measured completions per second that
        // Retry-After and ETAs are computed from.
        depth: stats?.depth ?? 0,
        oldest_wait_s: stats?.oldestSubmittedAt !== undefined ? Math.round((now - stats.oldestSubmittedAt) / 100) / 10 : 0,
        drain_rate_per_s: Math.round((stats?.drainPerS ?? 0) * 1000) / 1000,
      };
    };
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
        queue: {
          waiting: sum(all, 'waiting'),
          active: sum(all, 'active'),
          depth: sum(all, 'depth'),
          oldest_wait_s: Math.max(0, ...all.map((figure) => figure.oldest_wait_s)),
          drain_rate_per_s: Math.round(sum(all, 'drain_rate_per_s') * 1000) / 1000,
          pinned,
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

function sum(figures: QueueFigures[], field: keyof QueueFigures): number {
  return figures.reduce((total, figure) => total + figure[field], 0);
}
