import type { FastifyInstance } from 'fastify';
import { ApiErrorCode, canonicalModelName } from '@switchyard/protocol';
import type { ApiContext } from '../context.js';
import { access } from '../access.js';
import type { ModelBacklog } from '../backlog.js';
import { ApiError, quoteInput } from '../errors.js';

/** Longest model id accepted here (longer is a 400, not a Redis key of that size). */
const MAX_MODEL_ID = 512;

const FIELDS = ['backlog', 'waiting', 'prioritized', 'delayed', 'loading', 'unserved'] as const;

/**
 * The backlog as one number, for autoscalers (KEDA's `metrics-api` scaler reads a JSON
 * field: `valueLocation: backlog`). Admin only, like `/metrics` and `/v1/agents`: it shows
 * every tenant's demand, including demand for models no agent serves; a scaler sends an
 * admin key (`X-API-Key` or `Authorization: Bearer`).
 */
export function registerBacklogRoutes(app: FastifyInstance, ctx: ApiContext): void {
  /** Fleet-wide, with one entry per model; `?model=<id>` answers one model (any id, `/` included). */
  app.get<{ Querystring: { model?: unknown } }>('/v1/backlog', access('admin'), async (request) => {
    const { model } = request.query;
    if (model !== undefined) return modelBacklog(ctx, model);
    const models = await ctx.backlog.read();
    const total = Object.fromEntries(FIELDS.map((field) => [field, models.reduce((sum, row) => sum + row[field], 0)]));
    return { object: 'backlog', ...total, models: models.map((row) => ({ object: 'model_backlog', ...row })) };
  });

  /** One model. Ids with `/` (`hf.co/org/repo:tag`) are sent with it encoded (`%2F`), or through `/v1/backlog?model=`. */
  app.get<{ Params: { id: string } }>('/v1/models/:id/backlog', access('admin'), async (request) => modelBacklog(ctx, request.params.id));
}

async function modelBacklog(ctx: ApiContext, id: unknown): Promise<{ object: 'model_backlog' } & ModelBacklog> {
  if (typeof id !== 'string' || id.trim() === '') throw new ApiError(ApiErrorCode.invalidRequest, 'model: give one model id, e.g. model=llama3.2:3b');
  if (id.length > MAX_MODEL_ID) throw new ApiError(ApiErrorCode.invalidRequest, `model: an id is at most ${MAX_MODEL_ID} characters (this one has ${id.length})`);
  const model = canonicalModelName(id);
  const [row] = await ctx.backlog.read(model);
  if (!row) {
    throw new ApiError(
      ApiErrorCode.modelNotFound,
      `model ${quoteInput(id)} has no queue, no catalog entry and no agent that listed it lately; add it to the fleet catalog (PUT /admin/models/{name}) so a pool scaled to zero can be woken for it`,
    );
  }
  return { object: 'model_backlog', ...row };
}
