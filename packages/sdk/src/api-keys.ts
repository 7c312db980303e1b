/**
 * Tenant API keys as `/admin/keys` describes them. Like `/v1/models` entries, they are
 * checked here field by field (the protocol package has no schema for admin answers):
 * known fields must have their type, extra fields pass.
 */
export interface ApiKeyInfo {
  id: string;
  /** The key's first characters (`sy_…`), to tell keys apart; null for keys from the API's configuration. */
  prefix: string | null;
  tenant: string;
  admin: boolean;
  name: string | null;
  /** `redis`: managed through `/admin/keys`; `config`: from API_KEYS / API_KEYS_FILE / ADMIN_API_KEYS (cannot be rotated or revoked here). */
  source: 'redis' | 'config';
  /** ISO 8601; null for configured keys. */
  created_at: string | null;
  rotated_at: string | null;
  /** The key the last rotation replaced, while its grace period keeps it valid. */
  previous: { prefix: string; expires_at: string } | null;
  /** The tenant's limit overrides (shared by all its keys); null where the API's defaults apply. */
  limits: { in_flight: number | null; model_in_flight: number | null };
  [field: string]: unknown;
}

/** A key just created or rotated: `key` is the secret, shown by the API this once. */
export interface CreatedApiKey extends ApiKeyInfo {
  key: string;
}

/** What `createKey` sends (`POST /admin/keys`). */
export interface CreateKeyRequest {
  tenant: string;
  admin?: boolean;
  name?: string;
  /** Stored as the tenant's overrides, the same ones `PUT /admin/limits` sets. */
  limits?: { in_flight?: number; model_in_flight?: number };
}

const isObject = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
const isString = (value: unknown) => typeof value === 'string';
const isStringOrNull = (value: unknown) => value === null || typeof value === 'string';
const isLimit = (value: unknown) => value === null || (typeof value === 'number' && Number.isFinite(value));

/** The problem with one key description, or undefined when it is valid. */
export function apiKeyInfoProblem(value: unknown): string | undefined {
  if (!isObject(value)) return 'not an object';
  const checks: Array<[string, boolean]> = [
    ['id', isString(value.id)],
    ['prefix', isStringOrNull(value.prefix)],
    ['tenant', isString(value.tenant)],
    ['admin', typeof value.admin === 'boolean'],
    ['name', isStringOrNull(value.name)],
    ['source', value.source === 'redis' || value.source === 'config'],
    ['created_at', isStringOrNull(value.created_at)],
    ['rotated_at', isStringOrNull(value.rotated_at)],
    ['previous', value.previous === null || (isObject(value.previous) && isString(value.previous.prefix) && isString(value.previous.expires_at))],
    ['limits', isObject(value.limits) && isLimit(value.limits.in_flight) && isLimit(value.limits.model_in_flight)],
  ];
  for (const [field, ok] of checks) if (!ok) return `${field} is missing or has the wrong type`;
  return undefined;
}

/** The problem with a created or rotated key, or undefined. */
export function createdApiKeyProblem(value: unknown): string | undefined {
  if (isObject(value) && typeof value.key !== 'string') return 'key is missing or has the wrong type';
  return apiKeyInfoProblem(value);
}
