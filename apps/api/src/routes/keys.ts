import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { access } from '../access.js';
import { MAX_ROTATION_GRACE_S, TENANT_NAME, type ApiKeyEntry } from '../auth.js';
import type { ApiContext } from '../context.js';
import { invalidRequest } from '../errors.js';

const Limit = z.number().int().nonnegative();

const CreateKeyBody = z.strictObject({
  tenant: z.string().regex(TENANT_NAME, 'tenant names are 1-64 characters of A-Z a-z 0-9 . _ -'),
  admin: z.boolean().optional(),
  name: z.string().trim().min(1, 'name must not be empty').max(200, 'name is at most 200 characters').optional(),
  limits: z.strictObject({ in_flight: Limit.optional(), model_in_flight: Limit.optional() }).optional(),
});

const RotateKeyBody = z.strictObject({
  grace_s: z.number().int().min(0).max(MAX_ROTATION_GRACE_S, `grace_s is at most ${MAX_ROTATION_GRACE_S} (24 h)`).optional(),
});

const KeyId = z.object({ id: z.string() });

/** The tenant's limit overrides, read from the one place limits live: the hash `PUT /admin/limits` writes. */
type TenantLimitsView = { in_flight: number | null; model_in_flight: number | null };

/**
 * Tenant API keys at run time (admin key). Keys live hashed in Redis; every replica applies a
 * change within a poll period of its key store, the replica that made it at once. A key is
 * shown once, in the answer that created (or rotated) it. Limits given at creation are the
 * tenant's overrides in the admission limits hash (`tenant_in_flight:<tenant>`,
 * `tenant_model_in_flight:<tenant>`), exactly what `PUT /admin/limits` sets: they apply to
 * every key of that tenant.
 */
export function registerKeyRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const limitsHash = ctx.keys.admission.limits;

  const limitsOf = async (tenants: string[]): Promise<Map<string, TenantLimitsView>> => {
    const unique = [...new Set(tenants)];
    const fields = unique.flatMap((tenant) => [`tenant_in_flight:${tenant}`, `tenant_model_in_flight:${tenant}`]);
    const values = fields.length > 0 ? await ctx.redis.hmget(limitsHash, ...fields) : [];
    const number = (value: string | null | undefined) => (value === null || value === undefined || value === '' ? null : Number(value));
    return new Map(unique.map((tenant, index) => [tenant, { in_flight: number(values[2 * index]), model_in_flight: number(values[2 * index + 1]) }]));
  };
  const withLimits = async <T extends { entry: ApiKeyEntry }>(answer: T) => {
    const limits = (await limitsOf([answer.entry.tenant])).get(answer.entry.tenant)!;
    return { ...answer, limits };
  };

  app.get('/admin/keys', access('admin'), async () => {
    const entries = await ctx.keyStore.list();
    const limits = await limitsOf(entries.map((entry) => entry.tenant));
    return { data: entries.map((entry) => ({ ...entry, limits: limits.get(entry.tenant)! })) };
  });

  app.post('/admin/keys', access('admin'), async (request, reply) => {
    const parsed = CreateKeyBody.safeParse(request.body);
    if (!parsed.success) throw invalidRequest(parsed.error);
    const { tenant, admin, name, limits } = parsed.data;
    const set = [
      ...(limits?.in_flight !== undefined ? [`tenant_in_flight:${tenant}`, String(limits.in_flight)] : []),
      ...(limits?.model_in_flight !== undefined ? [`tenant_model_in_flight:${tenant}`, String(limits.model_in_flight)] : []),
    ];
    // Written once the store accepted the request and before the key exists, so the key is
    // never usable without its limits. (A separate write: the limits hash lives in the
    // admission ledger's Redis Cluster slot, the keys in their own.)
    const created = await ctx.keyStore.create({ tenant, admin: admin === true, name }, async () => {
      if (set.length > 0) await ctx.redis.hset(limitsHash, ...set);
    });
    request.log.info({ keyId: created.entry.id, tenant, admin: created.entry.admin, limits }, 'API key created');
    const answer = await withLimits(created);
    return reply.status(201).send({ key: answer.key, ...answer.entry, limits: answer.limits });
  });

  app.post('/admin/keys/:id/rotate', access('admin'), async (request) => {
    const { id } = KeyId.parse(request.params);
    // No body (or an empty one) rotates without grace.
    const parsed = RotateKeyBody.safeParse(request.body ?? {});
    if (!parsed.success) throw invalidRequest(parsed.error);
    const graceS = parsed.data.grace_s ?? 0;
    const rotated = await ctx.keyStore.rotate(id, graceS);
    request.log.info({ keyId: id, tenant: rotated.entry.tenant, graceS }, 'API key rotated');
    const answer = await withLimits(rotated);
    return { key: answer.key, ...answer.entry, limits: answer.limits };
  });

  app.delete('/admin/keys/:id', access('admin'), async (request) => {
    const { id } = KeyId.parse(request.params);
    const entry = await ctx.keyStore.revoke(id);
    request.log.info({ keyId: id, tenant: entry.tenant }, 'API key revoked');
    const { limits } = await withLimits({ entry });
    return { ...entry, limits, revoked: true };
  });
}
