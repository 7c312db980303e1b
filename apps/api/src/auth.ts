import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyRequest } from 'fastify';
import type { RedisConnection } from '@switchyard/redis';
import type { Logger } from 'pino';
import { z } from 'zod';
import { ApiErrorCode, type ApiKeyKeys } from '@switchyard/protocol';
import { KEY_PREFIX_LENGTH, generateKey, generateKeyId, readRegistry, sha256Hex, writeIfUnchanged, type ApiKeyRecord, type RegistrySnapshot } from './api-key-registry.js';
import { ApiError } from './errors.js';

/** Who a request acts for. */
export interface Principal {
  tenant: string;
  /** Admin keys unlock fleet endpoints, /metrics, /admin/* (limits, keys) and Bull Board. */
  admin: boolean;
  /** SHA-256 (hex) of the key that authenticated, so a session made from it ends when the key does. */
  keyDigest?: string;
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

/** Where a key comes from: the configuration (read at start-up) or the registry in Redis (`/admin/keys`). */
export type KeySource = 'config' | 'redis';

/** A key as `GET /admin/keys` shows it: never the key, nor its digest. */
export interface ApiKeyEntry {
  id: string;
  /** The key's first characters (`sy_…`); null for configured keys, which may be short enough that part of one matters. */
  prefix: string | null;
  tenant: string;
  admin: boolean;
  name: string | null;
  source: KeySource;
  /** ISO 8601; null for configured keys. */
  created_at: string | null;
  rotated_at: string | null;
  /** The key the last rotation replaced, while its grace period keeps it valid. */
  previous: { prefix: string; expires_at: string } | null;
}

/** Longest grace a rotation may give the replaced key: long enough to roll a deployment, short enough that a leaked key dies the same day. */
export const MAX_ROTATION_GRACE_S = 86_400;
/** How often every replica checks the registry's version counter: a change elsewhere applies here within this long. */
export const KEY_POLL_MS = 250;
/** Optimistic writes retried this many times when another change lands between read and write. */
const WRITE_ATTEMPTS = 5;

interface StoredKey {
  hash: Buffer;
  principal: Principal;
  /** Epoch ms from which the key no longer authenticates (a rotated key in its grace period). */
  expiresAt?: number;
}

interface ConfigKey extends StoredKey {
  /** `config-<n>`: stable while the configuration is. Not derived from the digest, which would help confirm a guessed key. */
  id: string;
  /** The variable the key came from. */
  origin: 'API_KEYS_FILE' | 'API_KEYS' | 'ADMIN_API_KEYS';
}

interface Registry {
  redis: RedisConnection;
  keys: ApiKeyKeys;
  logger: Logger;
}

const sha256 = (value: string) => createHash('sha256').update(value, 'utf8').digest();
const iso = (ms: number) => new Date(ms).toISOString();

/**
 * API keys → tenants, from two sources: the configuration (`API_KEYS_FILE`, `API_KEYS`,
 * `ADMIN_API_KEYS`, read at start-up) and the registry in Redis that `/admin/keys` manages
 * at run time. Keys are kept only as SHA-256 digests and every presented key is compared
 * against every stored digest with `timingSafeEqual`, without stopping at a match, so
 * neither a key nor which entry it matched leaks through timing.
 *
 * `authenticate` runs on every request, so it never waits on Redis: the store keeps a copy
 * of the registry in memory. Every replica polls the registry's version counter (one GET
 * every {@link KEY_POLL_MS}) and re-reads the records when it moved; a change made through
 * this store is applied to the copy before the call returns. A revoked key is therefore
 * refused at once by the replica that revoked it and within a poll period by the others.
 *
 * Open mode: with no configured key and an empty registry every caller is tenant `default`
 * with admin rights, as before run-time keys existed. The first key created (through that
 * open API: it must be an admin key) closes it on every replica.
 */
export class ApiKeyStore {
  private registry: Registry | undefined;
  /** `config`: no registry attached (config keys only); `unknown`: attached, never read; `loaded`: read at least once. */
  private state: 'config' | 'unknown' | 'loaded' = 'config';
  private snapshot: RegistrySnapshot = { version: '', records: [], unreadable: [] };
  /** Every digest that may authenticate, config keys first; rebuilt on each change. */
  private all: StoredKey[];
  /**
   * Set once the registry was seen holding a key. An emptied registry (a FLUSHALL, a Redis
   * restarted without persistence) then does not reopen this replica to everyone as admin.
   */
  private sealed = false;
  private timer: NodeJS.Timeout | undefined;
  /** Reads and writes of the registry run one at a time, so a snapshot never replaces a newer one. */
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;
  private failing = false;
  private reportedUnreadable = new Set<string>();
  private reportedEmptied = false;

  private constructor(
    private readonly configKeys: ConfigKey[],
    private readonly limits: Map<string, TenantLimits>,
  ) {
    this.all = [...configKeys];
  }

  /** From the configuration: `API_KEYS_FILE`, `API_KEYS` (`tenant:key,…`), `ADMIN_API_KEYS` (`key,…`). */
  static fromConfig(config: { apiKeys?: string | undefined; apiKeysFile?: string | undefined; adminApiKeys?: string | undefined }): ApiKeyStore {
    const keys: ConfigKey[] = [];
    const add = (origin: ConfigKey['origin'], hash: Buffer, principal: Principal) =>
      keys.push({ id: `config-${keys.length}`, origin, hash, principal: { ...principal, keyDigest: hash.toString('hex') } });
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
        add('API_KEYS_FILE', hash, { tenant: entry.tenant, admin: entry.admin === true });
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
      add('API_KEYS', sha256(key.data), { tenant: tenant.data, admin: false });
    }
    for (const item of splitList(config.adminApiKeys)) {
      const key = PlainKey.safeParse(item);
      if (!key.success) throw new Error(`ADMIN_API_KEYS: ${key.error.issues[0]?.message}`);
      add('ADMIN_API_KEYS', sha256(key.data), { tenant: ADMIN_TENANT, admin: true });
    }
    return new ApiKeyStore(keys, limits);
  }

  /**
   * Attaches the registry in Redis: reads it once (so the first request already sees its
   * keys), then polls its version. Redis down at start: logged, and requests that only a
   * registry key could authenticate answer 503 until the first read succeeds.
   */
  async start(registry: Registry & { pollMs?: number }): Promise<void> {
    if (this.registry) throw new Error('ApiKeyStore.start: already started');
    this.registry = { redis: registry.redis, keys: registry.keys, logger: registry.logger };
    this.state = 'unknown';
    await this.refresh().catch((error: unknown) => this.noteFailure(error));
    this.logMode();
    this.timer = setInterval(() => this.poll(), registry.pollMs ?? KEY_POLL_MS);
    this.timer.unref();
  }

  /** Stops polling and waits for a registry read or write in progress (the connection closes next). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.chain;
  }

  /** No keys anywhere: every caller is tenant `default` with admin rights. */
  get open(): boolean {
    return this.configKeys.length === 0 && this.state !== 'unknown' && this.snapshot.records.length === 0 && !this.sealed;
  }

  /** Keys that authenticate (configured and registered; a rotated key in its grace period not counted). */
  get size(): number {
    return this.configKeys.length + this.snapshot.records.length;
  }

  /**
   * The principal of a presented key, or undefined. Constant time in the key and in which
   * entry matched. Throws `redis_unavailable` (503) while the registry was never read and
   * only a key in it could decide: answering 401 (or running open) then would be a guess.
   */
  authenticate(presented: string | undefined): Principal | undefined {
    if (this.open) return { tenant: OPEN_TENANT, admin: true };
    const usable = presented !== undefined && presented.length > 0 && presented.length <= 512;
    let found: StoredKey | undefined;
    if (usable) {
      const hash = sha256(presented);
      for (const stored of this.all) {
        if (timingSafeEqual(hash, stored.hash) && found === undefined) found = stored;
      }
      // Checked after the loop, on the match only: the comparison stays the same for every key.
      if (found?.expiresAt !== undefined && found.expiresAt <= Date.now()) found = undefined;
    }
    if (found === undefined && this.state === 'unknown' && (usable || this.configKeys.length === 0)) {
      throw new ApiError(ApiErrorCode.redisUnavailable, 'API keys cannot be checked until the key registry in Redis is reachable; retry shortly', 1);
    }
    return found?.principal;
  }

  /** Whether the key with this SHA-256 (hex) still authenticates (not revoked, rotated away or past its grace). */
  isLive(keyDigest: string): boolean {
    return this.all.some((stored) => stored.principal.keyDigest === keyDigest && (stored.expiresAt === undefined || stored.expiresAt > Date.now()));
  }

  tenantLimits(tenant: string): TenantLimits {
    return this.limits.get(tenant) ?? {};
  }

  /** Reads the registry now (after the read or write in progress, if any). */
  refresh(): Promise<void> {
    const registry = this.registry;
    if (!registry) return Promise.resolve();
    return this.serialized(async () => this.apply(await readRegistry(registry.redis, registry.keys)));
  }

  /** Every key, configured ones included (without their key), read fresh from the registry. */
  async list(): Promise<ApiKeyEntry[]> {
    await this.refresh();
    const now = Date.now();
    return [
      ...this.configKeys.map((key): ApiKeyEntry => ({
        id: key.id,
        prefix: null,
        tenant: key.principal.tenant,
        admin: key.principal.admin,
        name: key.origin,
        source: 'config',
        created_at: null,
        rotated_at: null,
        previous: null,
      })),
      ...this.snapshot.records.map((record) => entryOf(record, now)),
    ];
  }

  /**
   * A new key in the registry, effective on this replica when this resolves. The key itself
   * is returned here only. `beforeWrite` runs once the request is known to be valid and
   * before the key exists (the tenant's limits: a key is never usable without them, and a
   * refused request writes nothing).
   */
  async create(input: { tenant: string; admin: boolean; name?: string | undefined }, beforeWrite?: () => Promise<void>): Promise<{ key: string; entry: ApiKeyEntry }> {
    let prepared = false;
    const prepare = async () => {
      if (prepared || !beforeWrite) return;
      await beforeWrite();
      prepared = true;
    };
    return this.write(prepare, (snapshot, now) => {
      // Without this, the first key would close the open API with nobody left who can manage keys.
      if (!input.admin && this.configKeys.length === 0 && snapshot.records.length === 0) {
        throw new ApiError(
          ApiErrorCode.invalidRequest,
          'invalid request body: admin: the first key must be an admin key (admin: true); a tenant key alone would close the open API with no key able to manage keys',
        );
      }
      const key = generateKey();
      let id = generateKeyId();
      while (snapshot.records.some((record) => record.id === id)) id = generateKeyId();
      const record: ApiKeyRecord = {
        id,
        sha256: sha256Hex(key),
        prefix: key.slice(0, KEY_PREFIX_LENGTH),
        tenant: input.tenant,
        admin: input.admin,
        name: input.name ?? null,
        created_at: now,
        rotated_at: null,
        previous: null,
      };
      return { id, record, result: { key, entry: entryOf(record, now) } };
    });
  }

  /**
   * A new key for the same record (id, tenant, admin flag, name). The replaced key stops
   * working at once, or after `graceS` seconds (at most {@link MAX_ROTATION_GRACE_S}) so
   * clients can switch over; a key replaced earlier and still in its grace stops at once.
   */
  async rotate(id: string, graceS = 0): Promise<{ key: string; entry: ApiKeyEntry }> {
    if (!Number.isInteger(graceS) || graceS < 0 || graceS > MAX_ROTATION_GRACE_S) throw new RangeError(`graceS must be an integer from 0 to ${MAX_ROTATION_GRACE_S}`);
    return this.write(undefined, (snapshot, now) => {
      const current = this.registered(snapshot, id, 'rotated');
      const key = generateKey();
      const record: ApiKeyRecord = {
        ...current,
        sha256: sha256Hex(key),
        prefix: key.slice(0, KEY_PREFIX_LENGTH),
        rotated_at: now,
        previous: graceS > 0 ? { sha256: current.sha256, prefix: current.prefix, expires_at: now + graceS * 1000 } : null,
      };
      return { id, record, result: { key, entry: entryOf(record, now) } };
    });
  }

  /** Removes a key (and any key it replaced that is still in its grace period), effective on this replica when this resolves. */
  async revoke(id: string): Promise<ApiKeyEntry> {
    return this.write(undefined, (snapshot, now) => {
      const current = this.registered(snapshot, id, 'revoked');
      const adminsLeft = this.configKeys.filter((key) => key.principal.admin).length + snapshot.records.filter((record) => record.admin && record.id !== id).length;
      if (current.admin && adminsLeft === 0) {
        throw new ApiError(
          ApiErrorCode.keyNotRevocable,
          `key ${id} is the last admin key: revoking it would leave no key able to manage keys (and an emptied registry would not reopen the API); create another admin key first, or rotate this one`,
        );
      }
      return { id, record: null, result: entryOf(current, now) };
    });
  }

  /** The registry's record `id`; configured keys and unknown ids are refused with why. */
  private registered(snapshot: RegistrySnapshot, id: string, verb: 'rotated' | 'revoked'): ApiKeyRecord {
    const configured = this.configKeys.find((key) => key.id === id);
    if (configured) {
      throw new ApiError(
        ApiErrorCode.keyNotRevocable,
        `key ${id} comes from the configuration (${configured.origin}) and cannot be ${verb} through the API: change ${configured.origin} and restart the API`,
      );
    }
    const record = snapshot.records.find((candidate) => candidate.id === id);
    if (!record) throw new ApiError(ApiErrorCode.notFound, `no API key ${id}`);
    return record;
  }

  /**
   * Read, decide, write if nothing changed meanwhile (else again), then apply the new state
   * to the in-memory copy: the caller's change is effective here before it answers, without
   * waiting for the next poll.
   */
  private write<T>(
    prepare: (() => Promise<void>) | undefined,
    decide: (snapshot: RegistrySnapshot, now: number) => { id: string; record: ApiKeyRecord | null; result: T },
  ): Promise<T> {
    const registry = this.registry;
    if (!registry) return Promise.reject(new Error('ApiKeyStore: keys can only be managed once the store is started with Redis'));
    return this.serialized(async () => {
      for (let attempt = 0; attempt < WRITE_ATTEMPTS; attempt++) {
        const snapshot = await readRegistry(registry.redis, registry.keys);
        const { id, record, result } = decide(snapshot, Date.now());
        await prepare?.();
        const version = await writeIfUnchanged(registry.redis, registry.keys, snapshot.version, id, record);
        if (version === undefined) continue;
        const others = snapshot.records.filter((candidate) => candidate.id !== id);
        this.apply({ version, records: record ? [...others, record] : others, unreadable: snapshot.unreadable });
        return result;
      }
      throw new Error(`the API key registry changed under this request ${WRITE_ATTEMPTS} times in a row`);
    });
  }

  private serialized<T>(task: () => Promise<T>): Promise<T> {
    this.queued++;
    const run = this.chain.then(task).finally(() => this.queued--);
    this.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** One GET of the version; the records are read only when it moved. Skipped while a read or write is queued (it will see the change). */
  private poll(): void {
    const registry = this.registry;
    if (!registry || this.queued > 0) return;
    this.serialized(async () => {
      const version = (await registry.redis.get(registry.keys.version)) ?? '';
      if (this.state !== 'loaded' || version !== this.snapshot.version) this.apply(await readRegistry(registry.redis, registry.keys));
    }).catch((error: unknown) => this.noteFailure(error));
  }

  private apply(snapshot: RegistrySnapshot): void {
    const logger = this.registry?.logger;
    const wasOpen = this.open;
    const wasUnknown = this.state === 'unknown';
    this.snapshot = snapshot;
    this.state = 'loaded';
    if (snapshot.records.length > 0) this.sealed = true;
    this.all = [
      ...this.configKeys,
      ...snapshot.records.flatMap((record): StoredKey[] => {
        const principal = (keyDigest: string): Principal => ({ tenant: record.tenant, admin: record.admin, keyDigest });
        const current: StoredKey = { hash: Buffer.from(record.sha256, 'hex'), principal: principal(record.sha256) };
        if (!record.previous) return [current];
        const previous = record.previous;
        return [current, { hash: Buffer.from(previous.sha256, 'hex'), principal: principal(previous.sha256), expiresAt: previous.expires_at }];
      }),
    ];
    if (this.failing) {
      this.failing = false;
      logger?.info({ keys: this.size, open: this.open }, 'API key registry readable again');
    }
    for (const id of snapshot.unreadable) {
      if (this.reportedUnreadable.has(id)) continue;
      this.reportedUnreadable.add(id);
      logger?.warn({ id }, 'API key registry: a record does not parse; it authenticates nothing');
    }
    if (this.sealed && snapshot.records.length === 0 && this.configKeys.length === 0 && !this.reportedEmptied) {
      this.reportedEmptied = true;
      logger?.error('the API key registry in Redis is empty though it held keys: requests still need a key (restart the API to run open, or configure ADMIN_API_KEYS)');
    }
    if (!wasUnknown && wasOpen !== this.open) {
      if (this.open) logger?.warn('no API keys left: running OPEN, every caller is tenant "default" with admin rights');
      else logger?.info({ keys: this.size }, 'an API key exists now: requests need a key');
    }
  }

  /** Keeps the last known keys; logs once per outage, never throws (it runs from a timer). */
  private noteFailure(error: unknown): void {
    if (this.failing) return;
    this.failing = true;
    const logger = this.registry?.logger;
    if (this.state === 'unknown')
      logger?.warn({ err: error }, 'API key registry unreadable: keys it holds are not accepted yet, and without configured keys requests answer 503');
    else logger?.warn({ err: error }, 'API key registry unreadable: keeping the keys last read');
  }

  private logMode(): void {
    const logger = this.registry?.logger;
    if (this.open) {
      logger?.warn(
        'no API keys configured (API_KEYS, API_KEYS_FILE, ADMIN_API_KEYS) or registered: running OPEN, every caller is tenant "default" with admin rights; create an admin key (POST /admin/keys, switchyard keys create) to close it',
      );
    } else if (this.state === 'loaded') {
      logger?.info({ configured: this.configKeys.length, registered: this.snapshot.records.length }, 'API keys configured: requests need a key');
    }
  }
}

function entryOf(record: ApiKeyRecord, now: number): ApiKeyEntry {
  return {
    id: record.id,
    prefix: record.prefix,
    tenant: record.tenant,
    admin: record.admin,
    name: record.name,
    source: 'redis',
    created_at: iso(record.created_at),
    rotated_at: record.rotated_at === null ? null : iso(record.rotated_at),
    previous: record.previous && record.previous.expires_at > now ? { prefix: record.previous.prefix, expires_at: iso(record.previous.expires_at) } : null,
  };
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
 * Board link; the board trades it for a session cookie, see admin-sessions.ts).
 */
export function presentedKey(request: FastifyRequest): string | undefined {
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
