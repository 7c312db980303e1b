import type { RedisConnection } from './connection.js';
import { CatalogEntry, type CatalogEntryInput, type RedisKeys } from '@switchyard/protocol';

/**
 * The fleet catalog in Redis: one hash of model name → entry (JSON), and a version counter
 * bumped with every change in the same MULTI, so readers that poll can tell cheaply whether
 * to re-read. Every change is also announced on the catalog channel so agents reconcile at
 * once rather than at their next poll.
 */
export class ModelCatalogStore {
  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: RedisKeys,
  ) {}

  /** Every entry, by name. Entries another version wrote in a shape this one cannot read are skipped. */
  async list(): Promise<CatalogEntry[]> {
    const raw = await this.redis.hgetall(this.keys.catalog.entries);
    const entries: CatalogEntry[] = [];
    for (const value of Object.values(raw)) {
      const entry = parseEntry(value);
      if (entry) entries.push(entry);
    }
    return entries.sort((a, b) => a.name.localeCompare(b.name));
  }

  async get(name: string): Promise<CatalogEntry | undefined> {
    const value = await this.redis.hget(this.keys.catalog.entries, name);
    return value === null ? undefined : parseEntry(value);
  }

  /** The version counter: changes whenever an entry does. */
  async version(): Promise<number> {
    return Number((await this.redis.get(this.keys.catalog.version)) ?? 0);
  }

  /**
   * Writes the entry for `name` from `input` (a whole replacement of the operator's fields:
   * absent ones go back to their defaults), clearing `removing`. Returns what was stored.
   */
  async put(name: string, input: CatalogEntryInput, now = Date.now(), rollout?: CatalogEntry['rollout']): Promise<CatalogEntry> {
    const existing = await this.get(name);
    const entry: CatalogEntry = { name, ...input, ...(rollout && { rollout }), created_at: existing?.created_at ?? now, updated_at: now };
    await this.write(entry);
    return entry;
  }

  /** Rewrites an entry's rollout (promote, abort, finish), keeping the rest; undefined when it has no entry. */
  async setRollout(name: string, rollout: CatalogEntry['rollout'], changes: Partial<Pick<CatalogEntry, 'digest'>> = {}, now = Date.now()): Promise<CatalogEntry | undefined> {
    const existing = await this.get(name);
    if (!existing) return undefined;
    const { rollout: _old, ...rest } = existing;
    const entry: CatalogEntry = { ...rest, ...changes, ...(rollout && { rollout }), updated_at: now };
    await this.write(entry);
    return entry;
  }

  /** Marks the model for removal from every node (Ollama's `DELETE /api/delete`); undefined when it has no entry. */
  async markRemoving(name: string, now = Date.now()): Promise<CatalogEntry> {
    const existing = await this.get(name);
    const entry: CatalogEntry = { name, created_at: existing?.created_at ?? now, updated_at: now, removing: true };
    await this.write(entry);
    return entry;
  }

  /** Removes the entry: the model is unmanaged again (it stays wherever it is). True when there was one. */
  async delete(name: string): Promise<boolean> {
    const replies = await this.redis.multi().hdel(this.keys.catalog.entries, name).incr(this.keys.catalog.version).exec();
    await this.redis.publish(this.keys.catalogChannel, name);
    return replies?.[0]?.[1] === 1;
  }

  private async write(entry: CatalogEntry): Promise<void> {
    await this.redis.multi().hset(this.keys.catalog.entries, entry.name, JSON.stringify(entry)).incr(this.keys.catalog.version).exec();
    await this.redis.publish(this.keys.catalogChannel, entry.name);
  }
}

function parseEntry(value: string): CatalogEntry | undefined {
  try {
    const parsed = CatalogEntry.safeParse(JSON.parse(value));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
