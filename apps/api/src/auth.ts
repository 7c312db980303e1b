import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';

/** Who a request acts for. */
export interface Principal {
  tenant: string;
  /** Admin keys unlock fleet endpoints, /metrics, /admin/limits and Bull Board. */
  admin: boolean;
}

/** Per-tenant limits from the keys file; absent values fall back to the configured defaults. */
export interface TenantLimits {
  inFlight?: number;
  modelInFlight?: number;
}

export const TENANT_NAME = /^[A-Za-z0-9._-]{1,64}$/;
/** The tenant of every caller when no keys are configured. */
export const OPEN_TENANT = 'default';
/** The tenant of keys given in ADMIN_API_KEYS. */
export const ADMIN_TENANT = 'admin';
/** Cookie that carries a key for Bull Board, whose browser requests cannot set headers. */
export const KEY_COOKIE = 'switchyard_key';

const Tenant = z.string().regex(TENANT_NAME, 'tenant names are 1-64 characters of A-Z a-z 0-9 . _ -');
// Keys are stored as plain SHA-256: fine for random high-entropy keys (no dictionary to try),
// not for passwords; the length floor keeps people from configuring guessable ones.
const PlainKey = z.string().min(16, 'API keys must be at least 16 characters').max(512);
const Limit = z.number().int().nonnegative();

/** `API_KEYS_FILE`: keys (plain or as sha256 hex) and per-tenant limits. */
export const KeysFile = z.strictObject({
  keys: z
    .array(
      z.union([
        z.strictObject({ tenant: Tenant, key: PlainKey, admin: z.boolean().optional() }),
        z.strictObject({ tenant: Tenant, sha256: z.string().regex(/^[0-9a-fA-F]{64}$/, 'sha256 must be 64 hex digits'), admin: z.boolean().optional() }),
      ]),
    )
    .default([]),
  tenants: z.record(Tenant, z.strictObject({ in_flight: Limit.optional(), model_in_flight: Limit.optional() })).default({}),
});
export type KeysFile = z.infer<typeof KeysFile>;

interface StoredKey {
  hash: Buffer;
  principal: Principal;
}

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest();

/**
 * API keys → tenants. Keys are kept only as SHA-256 digests and every presented key is
 * compared against every stored digest with `timingSafeEqual`, without stopping at a
 * match, so neither a key nor which entry it matched leaks through timing.
 */
export class ApiKeyStore {
  private constructor(
    private readonly keys: StoredKey[],
    private readonly limits: Map<string, TenantLimits>,
  ) {}

  /** From the configuration: `API_KEYS_FILE`, `API_KEYS` (`tenant:key,…`), `ADMIN_API_KEYS` (`key,…`). */
  static fromConfig(config: { apiKeys?: string | undefined; apiKeysFile?: string | undefined; adminApiKeys?: string | undefined }): ApiKeyStore {
    const keys: StoredKey[] = [];
    const limits = new Map<string, TenantLimits>();
    if (config.apiKeysFile) {
      let raw: unknown;
      try {
        raw = JSON.parse(readFileSync(config.apiKeysFile, 'utf8'));
      } catch (error) {
        throw new Error(`API_KEYS_FILE: cannot read ${config.apiKeysFile}: ${(error as Error).message}`);
      }
      const parsed = KeysFile.safeParse(raw);
      if (!parsed.success) {
        const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`);
        throw new Error(`API_KEYS_FILE: ${problems.join('; ')}`);
      }
      for (const entry of parsed.data.keys) {
        const hash = 'key' in entry ? sha256(entry.key) : Buffer.from(entry.sha256, 'hex');
        keys.push({ hash, principal: { tenant: entry.tenant, admin: entry.admin === true } });
      }
      for (const [tenant, value] of Object.entries(parsed.data.tenants)) {
        limits.set(tenant, {
          ...(value.in_flight !== undefined && { inFlight: value.in_flight }),
          ...(value.model_in_flight !== undefined && { modelInFlight: value.model_in_flight }),
        });
      }
    }
    for (const item of splitList(config.apiKeys)) {
      const colon = item.indexOf(':');
      const tenant = Tenant.safeParse(item.slice(0, Math.max(0, colon)));
      const key = PlainKey.safeParse(item.slice(colon + 1));
      if (colon <= 0 || !tenant.success) throw new Error('API_KEYS: entries are tenant:key, comma-separated, with tenant names of A-Z a-z 0-9 . _ -');
      if (!key.success) throw new Error(`API_KEYS: the key of tenant ${tenant.data}: ${key.error.issues[0]?.message}`);
      keys.push({ hash: sha256(key.data), principal: { tenant: tenant.data, admin: false } });
    }
    for (const item of splitList(config.adminApiKeys)) {
      const key = PlainKey.safeParse(item);
      if (!key.success) throw new Error(`ADMIN_API_KEYS: ${key.error.issues[0]?.message}`);
      keys.push({ hash: sha256(key.data), principal: { tenant: ADMIN_TENANT, admin: true } });
    }
    return new ApiKeyStore(keys, limits);
  }

  /** No keys configured: every caller is tenant `default` with admin rights. */
  get open(): boolean {
    return this.keys.length === 0;
  }

  get size(): number {
    return this.keys.length;
  }

  /** The principal of a presented key, or undefined. Constant time in the key and in which entry matched. */
  authenticate(presented: string | undefined): Principal | undefined {
    if (this.open) return { tenant: OPEN_TENANT, admin: true };
    if (presented === undefined || presented.length === 0 || presented.length > 512) return undefined;
    const hash = sha256(presented);
    let found: Principal | undefined;
    for (const stored of this.keys) {
      if (timingSafeEqual(hash, stored.hash) && found === undefined) found = stored.principal;
    }
    return found;
  }

  tenantLimits(tenant: string): TenantLimits {
    return this.limits.get(tenant) ?? {};
  }
}

function splitList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0);
}

/**
 * The key a request presents: `Authorization: Bearer <key>` or `X-API-Key: <key>`; for
 * browser clients that cannot set headers, `?key=` on GET requests (EventSource, a Bull
 * Board link) and the `switchyard_key` cookie under /admin (set by a `?key=` visit).
 */
export function presentedKey(request: FastifyRequest, options: { cookie: boolean }): string | undefined {
  const authorization = request.headers.authorization;
  if (typeof authorization === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match) return match[1];
  }
  const header = request.headers['x-api-key'];
  if (typeof header === 'string' && header.length > 0) return header;
  if (request.method === 'GET' || request.method === 'HEAD') {
    const query = request.query as Record<string, unknown> | undefined;
    if (query && typeof query.key === 'string' && query.key.length > 0) return query.key;
  }
  if (options.cookie) return cookieValue(request.headers.cookie, KEY_COOKIE);
  return undefined;
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== name) continue;
    try {
      return decodeURIComponent(part.slice(eq + 1).trim());
    } catch {
      return undefined;
    }
  }
  return undefined;
}
