/**
 * Names for the SHA1s EVALSHA is called with, so a benchmark can say which script costs
 * what. Redis itself cannot: `INFO commandstats` has one `evalsha` line for all scripts and
 * keeps no per-script statistics (only Redis Functions, which neither BullMQ nor Switchyard
 * use, have names). ioredis sends EVALSHA with the SHA1 of the script's source, so the
 * names come from the sources: BullMQ's scripts as its package ships them, and Switchyard's
 * as its own classes register them (`defineCommand`) on a connection that never connects.
 */
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { redisKeys } from '@switchyard/protocol';

export function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

/** SHA1 → script name, for the build of Switchyard in `appsRoot` (unknown scripts are left out). */
export async function scriptNames(appsRoot: string): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  try {
    const require = createRequire(join(appsRoot, 'packages', 'redis', 'package.json'));
    const scripts = require('bullmq/dist/cjs/scripts/index.js') as Record<string, { name?: string; content?: string }>;
    for (const script of Object.values(scripts)) {
      if (script?.name && typeof script.content === 'string') names.set(sha1(script.content), `bullmq.${script.name}`);
    }
  } catch {
    // another BullMQ layout: its scripts stay unnamed (their keys still say they are BullMQ's)
  }
  const redis = new Redis({ lazyConnect: true, enableOfflineQueue: false });
  try {
    const module = (await import(pathToFileURL(join(appsRoot, 'packages', 'redis', 'dist', 'index.js')).href)) as Record<string, unknown>;
    const keys = redisKeys('names');
    // The loader defines every script; builds before it had one defined them in these classes.
    const defineScripts = module.defineScripts as ((redis: Redis) => unknown) | undefined;
    if (typeof defineScripts === 'function') defineScripts(redis);
    for (const name of ['EventLog', 'JobIndex', 'AdmissionLedger']) {
      const Class = module[name] as (new (redis: Redis, keys: ReturnType<typeof redisKeys>) => unknown) | undefined;
      if (typeof Class === 'function' && typeof defineScripts !== 'function') new Class(redis, keys);
    }
    const defined = (redis as unknown as { scriptsSet?: Record<string, { sha?: string }> }).scriptsSet ?? {};
    for (const [name, script] of Object.entries(defined)) if (script.sha) names.set(script.sha, name);
  } catch {
    // not built, or classes renamed: those scripts are named by their keys only
  } finally {
    redis.disconnect();
  }
  return names;
}
