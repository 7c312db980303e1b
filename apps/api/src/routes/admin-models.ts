import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ApiErrorCode, CatalogEntryInput, canonicalModelName } from '@switchyard/protocol';
import { access } from '../access.js';
import { modelStatus } from '../catalog-status.js';
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
    const existed = (await ctx.catalog.get(name)) !== undefined;
    const entry = await ctx.catalog.put(name, parsed.data);
    request.log.info({ model: name, entry }, 'fleet catalog entry written');
    return reply.status(existed ? 200 : 201).send(modelStatus(name, entry, await ctx.fleet.agents()));
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
