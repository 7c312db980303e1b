import { createHash, randomBytes } from 'node:crypto';
import type { RedisConnection } from '@switchyard/redis';
import type { ApiKeyKeys } from '@switchyard/protocol';
import { defineScripts } from '@switchyard/redis';
import { z } from 'zod';

/**
 * The run-time key registry in Redis: one hash of key records (id → JSON) and a version
 * counter bumped by every change. Records hold the SHA-256 of a key, never the key.
 */

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

/** One key as stored. Times are epoch milliseconds. */
export const ApiKeyRecord = z.object({
  id: z.string(),
  sha256: Sha256Hex,
  /** The first characters of the key, safe to show: they tell keys apart, and the rest still holds 214 random bits. */
  prefix: z.string(),
  tenant: z.string(),
  admin: z.boolean(),
  name: z.string().nullable(),
  created_at: z.number().int(),
  rotated_at: z.number().int().nullable(),
  /** The key replaced by the last rotation, while its grace period lasts. */
  previous: z.object({ sha256: Sha256Hex, prefix: z.string(), expires_at: z.number().int() }).nullable(),
});
export type ApiKeyRecord = z.infer<typeof ApiKeyRecord>;

/** A consistent read of the registry: the records as of `version` ('' before the first change). */
export interface RegistrySnapshot {
  version: string;
  records: ApiKeyRecord[];
  /** Ids whose stored value did not parse (written by something else); they authenticate nothing. */
  unreadable: string[];
}

/** How many leading characters of a key are shown in listings (`sy_` and 7 random ones). */
export const KEY_PREFIX_LENGTH = 10;

/**
 * A new key: `sy_` and 32 random bytes in base64url. 256 bits from the CSPRNG leave nothing
 * to guess or look up in a dictionary, so a plain SHA-256 of it is as strong as a slow KDF
 * would be — and every request hashes the presented key once, which a KDF would make cost
 * milliseconds of CPU each.
 */
export function generateKey(): string {
  return `sy_${randomBytes(32).toString('base64url')}`;
}

/** Ids are random too, not derived from the key, so an id reveals nothing about it. */
export function generateKeyId(): string {
  return `k_${randomBytes(9).toString('base64url')}`;
}

export function sha256Hex(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** Both reads in one MULTI, so the records are exactly those of the version read with them. */
export async function readRegistry(redis: RedisConnection, keys: ApiKeyKeys): Promise<RegistrySnapshot> {
  const replies = await redis.multi().get(keys.version).hgetall(keys.records).exec();
  if (!replies) throw new Error('the API key registry read was aborted');
  const [versionReply, recordsReply] = replies;
  if (versionReply?.[0]) throw versionReply[0];
  if (recordsReply?.[0]) throw recordsReply[0];
  const raw = (recordsReply?.[1] ?? {}) as Record<string, string>;
  const records: ApiKeyRecord[] = [];
  const unreadable: string[] = [];
  for (const [id, value] of Object.entries(raw)) {
    let parsed: ReturnType<typeof ApiKeyRecord.safeParse> | undefined;
    try {
      parsed = ApiKeyRecord.safeParse(JSON.parse(value));
    } catch {
      parsed = undefined;
    }
    if (parsed?.success && parsed.data.id === id) records.push(parsed.data);
    else unreadable.push(id);
  }
  records.sort((a, b) => a.created_at - b.created_at || a.id.localeCompare(b.id));
  return { version: (versionReply?.[1] as string | null) ?? '', records, unreadable };
}

/**
 * Writes `record` under `id` (or deletes `id` when `record` is null) if nothing changed since
 * `version`, and bumps the version (lua/write-api-key-if-unchanged-2.lua); returns the new
 * version, or undefined when another change came first. Decisions that look at several
 * records (the last admin key) then hold for the state they were made on.
 */
export async function writeIfUnchanged(redis: RedisConnection, keys: ApiKeyKeys, version: string, id: string, record: ApiKeyRecord | null): Promise<string | undefined> {
  const result = await defineScripts(redis).sy_write_api_key_if_unchanged_v1(keys.records, keys.version, version, id, record ? JSON.stringify(record) : '');
  return result ?? undefined;
}
