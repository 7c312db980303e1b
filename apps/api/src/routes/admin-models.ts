import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ApiErrorCode, CatalogEntryInput, canonicalModelName } from '@switchyard/protocol';
import { access } from '../access.js';
import { modelStatus, nextRollout, rolloutView } from '../catalog-status.js';
import type { ApiContext } from '../context.js';
import { ApiError, invalidRequest, quoteInput } from '../errors.js';

/** A model name as a path parameter (`llama3.1:8b`, `hf.co/org/repo:Q4_K_M` with its `/` as `%2F`). */
const ModelParam = z.object({
  name: z
    .string()
    .min(1)
    .max(300)
    .regex(/^[^\s@]+$/, 'a model name has no spaces and no "@" (set a build with the body\'s digest)'),
});

/**
 * The fleet catalog (admin key): desired state for which models the fleet holds on disk,
 * where and at which build (packages/protocol/src/model-catalog.ts), and where each model
 * stands against it (catalog-status.ts). Agents reconcile within a pass of a change.
 *
 * - `GET /admin/models`: every catalog entry with its status, and the models the fleet
 *   holds without an entry (`unmanaged`, served where they are).
 * - `GET /admin/models/:name`: one model's status; 404 `catalog_entry_not_found` when the
 *   catalog has no entry and no node holds it.
 * - `PUT /admin/models/:name` `{digest?, copies?: {min, max?}, on?: {agents?, labels?},
 *   pinned?, keep_on_disk?}`: writes the entry whole (201 when new, else 200), with its status.
 * - `DELETE /admin/models/:name`: removes the entry; the model is unmanaged again and stays
 *   where it is (Ollama's `DELETE /api/delete` on the broker deletes it from the fleet).
 */
export function registerAdminModelRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const nameOf = (params: unknown) => {
    const parsed = ModelParam.safeParse(params);
    if (!parsed.success) throw invalidRequest(parsed.error);
    return canonicalModelName(parsed.data.name);
  };

  /** The entry's rollout while it runs; 409 `rollout_not_running` otherwise. */
  const runningRollout = async (name: string) => {
    const entry = await ctx.catalog.get(name);
    if (!entry) throw notInCatalog(name);
    const rollout = entry.rollout;
    if (!rollout || rollout.finished_at !== undefined || rollout.aborted_at !== undefined) {
      throw new ApiError(
        ApiErrorCode.rolloutNotRunning,
        `${quoteInput(name)} has no rollout running (its last one is ${rollout ? (rollout.aborted_at !== undefined ? 'aborted' : 'done') : 'none'})`,
      );
    }
    return { entry, rollout };
  };

  app.get('/admin/models', access('admin'), async () => {
    const [entries, agents] = await Promise.all([ctx.catalog.list(), ctx.fleet.agents()]);
    const managed = new Set(entries.map((entry) => entry.name));
    const unmanaged = [...new Set(agents.flatMap((agent) => agent.models_available.map((model) => model.name)))].filter((name) => !managed.has(name)).sort();
    return {
      data: [...entries.map((entry) => modelStatus(entry.name, entry, agents)), ...unmanaged.map((name) => modelStatus(name, undefined, agents))],
    };
  });

  app.get('/admin/models/:name', access('admin'), async (request) => {
    const name = nameOf(request.params);
    const [entry, agents] = await Promise.all([ctx.catalog.get(name), ctx.fleet.agents()]);
    const status = modelStatus(name, entry, agents);
    if (!entry && status.holding === 0) throw notInCatalog(name);
    return status;
  });

  app.put('/admin/models/:name', access('admin'), async (request, reply) => {
    const name = nameOf(request.params);
    if (request.body === null || typeof request.body !== 'object' || Array.isArray(request.body)) {
      throw new ApiError(ApiErrorCode.invalidRequest, 'request body must be a JSON object (an empty one {} takes every default)');
    }
    const parsed = CatalogEntryInput.safeParse(request.body);
    if (!parsed.success) throw invalidRequest(parsed.error);
    const [existing, agents] = await Promise.all([ctx.catalog.get(name), ctx.fleet.agents()]);
    const now = Date.now();
    const rollout = nextRollout(name, existing, parsed.data.digest, agents, now);
    const entry = await ctx.catalog.put(name, parsed.data, now, rollout);
    if (rollout && rollout !== existing?.rollout)
      request.log.info({ model: name, from: rollout.from.slice(0, 12), to: rollout.to.slice(0, 12), rollback: rollout.aborted_at !== undefined }, 'rollout started');
    request.log.info({ model: name, entry }, 'fleet catalog entry written');
    return reply.status(existing ? 200 : 201).send(modelStatus(name, entry, agents));
  });

  app.get('/admin/models/:name/rollout', access('admin'), async (request) => {
    const name = nameOf(request.params);
    const [entry, agents] = await Promise.all([ctx.catalog.get(name), ctx.fleet.agents()]);
    if (!entry) throw notInCatalog(name);
    const view = rolloutView(entry, agents);
    if (!view) throw new ApiError(ApiErrorCode.rolloutNotFound, `${quoteInput(name)} has had no rollout (PUT /admin/models/:name with a new digest starts one)`);
    return view;
  });

  // Ends a canary: every unpinned job goes to the new build once enough nodes hold it.
  app.post('/admin/models/:name/rollout/promote', access('admin'), async (request) => {
    const name = nameOf(request.params);
    const { entry, rollout } = await runningRollout(name);
    const updated = await ctx.catalog.setRollout(name, { ...rollout, promoted_at: Date.now() });
    request.log.info({ model: name, to: rollout.to.slice(0, 12) }, 'rollout promoted');
    return rolloutView(updated ?? entry, await ctx.fleet.agents());
  });

  // Rolls back: the catalog names the old build again, and nodes restore it from the copy they kept.
  app.post('/admin/models/:name/rollout/abort', access('admin'), async (request) => {
    const name = nameOf(request.params);
    const { entry, rollout } = await runningRollout(name);
    const now = Date.now();
    const updated = await ctx.catalog.setRollout(name, { from: rollout.to, to: rollout.from, started_at: now, aborted_at: now }, { digest: rollout.from });
    request.log.info({ model: name, back_to: rollout.from.slice(0, 12) }, 'rollout aborted: rolling back');
    return rolloutView(updated ?? entry, await ctx.fleet.agents());
  });

  app.delete('/admin/models/:name', access('admin'), async (request) => {
    const name = nameOf(request.params);
    if (!(await ctx.catalog.delete(name))) throw notInCatalog(name);
    request.log.info({ model: name }, 'fleet catalog entry removed');
    return { name, deleted: true };
  });
}

function notInCatalog(name: string): ApiError {
  return new ApiError(ApiErrorCode.catalogEntryNotFound, `the fleet catalog has no entry for ${quoteInput(name)} (GET /admin/models lists them)`);
}
