import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ClientContext, RedisKey, Result } from 'ioredis';
import type { RedisConnection } from './connection.js';
import { luaLedgerLayout, type RefusalCode } from './ledger-layout.js';
import { luaEventEnvelope } from './event-envelope.js';

/**
 * The one loader of Switchyard's Lua scripts (BullMQ's own are BullMQ's business).
 *
 * Each script is a file `lua/<name>-<numKeys>.lua` (`-n` when the caller gives the count)
 * opening with a header that says what it does, each KEYS[i], its ARGV and what it returns
 * (`scripts.test.ts` checks it). A line `--@include "<name>"` inlines `lua/includes/<name>.lua`
 * once per script; `--@include "ts:<name>"` inlines constants generated from TypeScript
 * (see GENERATED), so layouts and names shared with TypeScript are written once.
 *
 * The files are read from the package root, next to `src/` and `dist/` alike, so the same
 * URL works from the sources (vitest, the `@switchyard/source` condition) and from the build.
 *
 * Command names carry a version (`sy_admit_v1`). Redis itself runs scripts by SHA, but
 * ioredis binds a name to one script per connection: two versions of this package sharing a
 * connection would otherwise call each other's script under one name. A changed script takes
 * the next version; `scripts.test.ts` pins each version's source hash so a change without one
 * fails.
 */

/** Each command: the file it runs. Keyed by the names declared on `RedisCommander` below. */
const COMMAND_FILES = {
  sy_admit_v2: 'admit-13.lua',
  sy_start_reservation_v2: 'start-reservation-4.lua',
  sy_release_reservation_v2: 'release-reservation-6.lua',
  sy_recompute_inflight_v1: 'recompute-inflight-n.lua',
  sy_ledger_stats_v1: 'ledger-stats-n.lua',
  sy_reservation_positions_v1: 'reservation-positions-1.lua',
  sy_watch_stream_v1: 'watch-stream-2.lua',
  sy_job_submit_v2: 'job-submit-2.lua',
  sy_job_claim_v2: 'job-claim-2.lua',
  sy_job_event_v2: 'job-event-2.lua',
  sy_job_finish_v2: 'job-finish-2.lua',
  sy_hold_lock_v1: 'hold-lock-1.lua',
  sy_delete_if_equal_v1: 'delete-if-equal-1.lua',
  sy_write_api_key_if_unchanged_v1: 'write-api-key-if-unchanged-2.lua',
} as const satisfies Record<keyof SwitchyardCommands<{ type: 'default' }>, string>;

export type ScriptCommandName = keyof typeof COMMAND_FILES;

/** Includes built from TypeScript values: the only place they are spelled is the TypeScript they come from. */
const GENERATED: Record<string, () => string> = {
  'ts:ledger-layout': () => `local LAYOUT = ${luaLiteral(luaLedgerLayout())}\n`,
  'ts:event-envelope': () => `local ENVELOPE = ${luaLiteral(luaEventEnvelope())}\n`,
};

const LUA_DIR = new URL('../lua/', import.meta.url);
const FILE_NAME = /^([a-z][a-z0-9-]*)-(\d+|n)\.lua$/;
const INCLUDE = /^--@include "([a-z0-9:-]+)"\s*$/;

export interface ScriptDefinition {
  name: ScriptCommandName;
  file: string;
  /** KEYS count from the file name; undefined for `-n` scripts, whose caller passes it first. */
  numberOfKeys: number | undefined;
  /** The source as sent to Redis, includes inlined. */
  lua: string;
}

let loaded: ScriptDefinition[] | undefined;

/** Every command with its resolved source (read once per process). */
export function scriptDefinitions(): readonly ScriptDefinition[] {
  loaded ??= Object.entries(COMMAND_FILES).map(([name, file]) => {
    const match = FILE_NAME.exec(file);
    if (!match) throw new Error(`Lua script file name ${file} is not <name>-<numKeys>.lua`);
    return {
      name: name as ScriptCommandName,
      file,
      numberOfKeys: match[2] === 'n' ? undefined : Number(match[2]),
      lua: resolveIncludes(readLua(file), file, new Set(), []),
    };
  });
  return loaded;
}

const defined = new WeakSet<object>();

/**
 * Defines every command on this connection, once (later calls are free). Returns the same
 * connection, so a caller that only has a connection can write `defineScripts(redis).sy_…()`.
 */
export function defineScripts<T extends Pick<RedisConnection, 'defineCommand'>>(redis: T): T {
  if (defined.has(redis)) return redis;
  for (const script of scriptDefinitions()) {
    redis.defineCommand(script.name, { lua: script.lua, ...(script.numberOfKeys !== undefined && { numberOfKeys: script.numberOfKeys }) });
  }
  defined.add(redis);
  return redis;
}

function readLua(relative: string): string {
  return readFileSync(new URL(relative, LUA_DIR), 'utf8');
}

function resolveIncludes(source: string, from: string, done: Set<string>, stack: string[]): string {
  const out: string[] = [];
  for (const line of source.split('\n')) {
    if (!line.includes('--@include')) {
      out.push(line);
      continue;
    }
    const name = INCLUDE.exec(line)?.[1];
    if (!name) throw new Error(`${from}: malformed include line: ${line.trim()}`);
    if (stack.includes(name)) throw new Error(`${from}: include cycle ${[...stack, name].join(' -> ')}`);
    // Once per script: helpers are `local`, and a second copy would shadow the first for nothing.
    if (done.has(name)) continue;
    done.add(name);
    const generated = GENERATED[name];
    const text = generated ? generated() : readLua(`includes/${name}.lua`);
    out.push(resolveIncludes(text, `includes/${name}.lua`, done, [...stack, name]).replace(/\n$/, ''));
  }
  return out.join('\n');
}

/** A Lua literal of plain data: strings, finite numbers, booleans, arrays and objects of them. */
export function luaLiteral(value: unknown): string {
  if (typeof value === 'string') {
    if (!/^[\x20-\x7e]*$/.test(value)) throw new Error(`only printable ASCII goes into generated Lua: ${JSON.stringify(value)}`);
    return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  }
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`not a finite number: ${value}`);
    return String(value);
  }
  if (typeof value === 'boolean') return String(value);
  if (Array.isArray(value)) return `{ ${value.map(luaLiteral).join(', ')} }`;
  if (value !== null && typeof value === 'object') {
    const fields = Object.entries(value).map(([key, item]) => {
      const name = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? key : `[${luaLiteral(key)}]`;
      return `${name} = ${luaLiteral(item)}`;
    });
    return `{ ${fields.join(', ')} }`;
  }
  throw new Error(`no Lua literal for ${String(value)}`);
}

/** SHA-1 of a script's source after its header: what a version pins (header wording is free to change). */
export function scriptBodyHash(lua: string): string {
  return createHash('sha1')
    .update(lua.replace(/^--\[\[[\s\S]*?\]\]\n/, ''))
    .digest('hex');
}

/** Replies, as the headers document them. */
export type AdmitReply = ['dup', string] | ['refused', RefusalCode, string, string, string, string] | ['ok', string, string, string, string];
export type LedgerStatsRow = [depth: number, oldest: string, inFlight: string, drainX1000: string, estimates?: string[]];
/** A job transition's reply: `[seq, status]` when taken (seq 1 for a claim without an event; a claim that created the record adds 'adopted'), `[0, why, status]` when refused. */
export type JobTransitionReply = [seq: number, status: string, adopted?: 'adopted' | '', afterSeq?: number] | [0, why: 'missing' | 'state' | 'fenced', status: string];
export type PositionRow = [''] | [state: string, model: string, tenant: string, detach: string, rank: number];

/**
 * The commands as ioredis sees them once `defineScripts` ran on a connection. Fixed-key
 * scripts take their KEYS then their ARGV; `-n` scripts take the KEYS count first.
 */
interface SwitchyardCommands<Context extends ClientContext> {
  sy_admit_v2(
    jobs: RedisKey,
    inflight: RedisKey,
    limits: RedisKey,
    retrySlots: RedisKey,
    waiting: RedisKey,
    since: RedisKey,
    drainModel: RedisKey,
    drainTenant: RedisKey,
    drainGlobal: RedisKey,
    lastStarts: RedisKey,
    priorityEpochs: RedisKey,
    deadlines: RedisKey,
    idempotency: RedisKey,
    options: string,
  ): Result<AdmitReply, Context>;
  sy_start_reservation_v2(jobs: RedisKey, deadlines: RedisKey, waitSamples: RedisKey, loadMs: RedisKey, options: string): Result<0 | 1, Context>;
  sy_release_reservation_v2(
    jobs: RedisKey,
    deadlines: RedisKey,
    watched: RedisKey,
    inflight: RedisKey,
    outcomes: RedisKey,
    drainGlobal: RedisKey,
    options: string,
  ): Result<0 | 1, Context>;
  /** `numKeys` = 2 + 2 per model: jobs, inflight, then waiting and since of each model. No ARGV. */
  sy_recompute_inflight_v1(numKeys: number, ...keys: RedisKey[]): Result<number, Context>;
  /** `numKeys` = 1 + 3 per model: inflight, then waiting, since and drain of each model; then the options JSON. */
  sy_ledger_stats_v1(numKeys: number, ...keysThenOptions: RedisKey[]): Result<LedgerStatsRow[], Context>;
  sy_reservation_positions_v1(jobs: RedisKey, waitPrefix: string, ...jobIds: string[]): Result<PositionRow[], Context>;
  sy_watch_stream_v1(jobs: RedisKey, watched: RedisKey, jobId: string, now: string): Result<0 | 1, Context>;
  sy_job_submit_v2(
    record: RedisKey,
    events: RedisKey,
    status: string,
    recordTtlSeconds: number,
    eventsTtlSeconds: number,
    maxEvents: number,
    queuedEvent: string,
    ...fieldsAndValues: string[]
  ): Result<JobTransitionReply, Context>;
  sy_job_claim_v2(
    record: RedisKey,
    events: RedisKey,
    from: string,
    to: string,
    attempt: string,
    agent: string,
    channel: string,
    maxEvents: number,
    restartedEvent: string,
    adoption: string,
    resumeAttempt: string,
  ): Result<JobTransitionReply, Context>;
  sy_job_event_v2(
    record: RedisKey,
    events: RedisKey,
    from: string,
    to: string,
    attempt: string,
    channel: string,
    maxEvents: number,
    ttlIfAdopted: number | '',
    event: string,
  ): Result<JobTransitionReply, Context>;
  sy_job_finish_v2(
    record: RedisKey,
    events: RedisKey,
    from: string,
    status: string,
    attempt: string,
    channel: string,
    maxEvents: number,
    ttlSeconds: number,
    event: string,
    ...fieldsAndValues: string[]
  ): Result<JobTransitionReply, Context>;
  sy_hold_lock_v1(lock: RedisKey, holder: string, ttlMs: string): Result<0 | 1, Context>;
  sy_delete_if_equal_v1(key: RedisKey, value: string): Result<0 | 1, Context>;
  sy_write_api_key_if_unchanged_v1(records: RedisKey, version: RedisKey, expectedVersion: string, id: string, record: string): Result<string | null, Context>;
}

declare module 'ioredis' {
  // Declared here so that every connection type-checks these calls (pipelines included);
  // at run time they exist once defineScripts ran on the connection.
  interface RedisCommander<Context> extends SwitchyardCommands<Context> {}
}
