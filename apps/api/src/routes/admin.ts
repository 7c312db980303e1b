import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ApiErrorCode, MODEL_NAME_PATTERN } from '@switchyard/protocol';
import { TENANT_NAME } from '../auth.js';
import type { ApiContext } from '../context.js';
import { ApiError, invalidRequest, quoteInput } from '../errors.js';
import { access } from '../access.js';
import { LIMIT_NAMES, type LimitName } from '@switchyard/redis';

/**
 * A limit field of the Redis hash: a limit name (the ledger's own, LIMIT_NAMES), scoped by
 * `:<model>` for queue depth or `:<tenant>` for the tenant limits; the global one unscoped.
 */
function validField(field: string): boolean {
  const colon = field.indexOf(':');
  const name = colon === -1 ? field : field.slice(0, colon);
  if (!Object.values(LIMIT_NAMES).includes(name as LimitName)) return false;
  if (colon === -1) return true;
  const scope = field.slice(colon + 1);
  if (name === LIMIT_NAMES.globalInFlight) return false;
  return name === LIMIT_NAMES.queueDepth ? MODEL_NAME_PATTERN.test(scope.split('@')[0]!) : TENANT_NAME.test(scope);
}

const LimitsPatch = z.record(z.string(), z.union([z.number().int().nonnegative(), z.null()]));

/**
 * Run-time limits (admin key). Values live in a Redis hash that every admission reads, so a
 * change applies to the next submit on every replica, without a restart.
 */
export function registerAdminRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const describe = async () => {
    const [overrides, inFlight] = await Promise.all([ctx.redis.hgetall(ctx.ledger.keys.limits), ctx.ledger.inFlight()]);
    return {
      defaults: {
        queue_depth: ctx.config.queueDepthLimit,
        tenant_in_flight: ctx.config.tenantInFlightLimit,
        tenant_model_in_flight: ctx.config.tenantModelInFlightLimit,
        global_in_flight: ctx.config.globalInFlightLimit,
      },
      overrides: Object.fromEntries(Object.entries(overrides).map(([field, value]) => [field, Number(value)])),
      in_flight: inFlight,
    };
  };

  app.get('/admin/limits', access('admin'), async () => describe());

  app.put('/admin/limits', access('admin'), async (request) => {
    const parsed = LimitsPatch.safeParse(request.body);
    if (!parsed.success) throw invalidRequest(parsed.error);
    const bad = Object.keys(parsed.data).filter((field) => !validField(field));
    if (bad.length > 0) {
      throw new ApiError(
        ApiErrorCode.invalidRequest,
        `unknown limit(s) ${bad
          .slice(0, 10)
          .map((field) => quoteInput(field, 60))
          .join(', ')}; use queue_depth[:<model>], tenant_in_flight[:<tenant>], tenant_model_in_flight[:<tenant>] or global_in_flight`,
      );
    }
    const set = Object.entries(parsed.data).filter((entry): entry is [string, number] => entry[1] !== null);
    const cleared = Object.entries(parsed.data)
      .filter(([, value]) => value === null)
      .map(([field]) => field);
    const write = ctx.redis.multi();
    if (set.length > 0) write.hset(ctx.ledger.keys.limits, ...set.flatMap(([field, value]) => [field, String(value)]));
    if (cleared.length > 0) write.hdel(ctx.ledger.keys.limits, ...cleared);
    await write.exec();
    request.log.info({ set: Object.fromEntries(set), cleared }, 'admission limits changed');
    return describe();
  });
}
