import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisConnection } from './connection.js';
import { testRedis } from '@switchyard/testing';
import { closeRedis, createRedis } from './connection.js';
import { defineScripts, scriptBodyHash, scriptDefinitions, type ScriptCommandName } from './scripts.js';

const LUA_DIR = new URL('../lua/', import.meta.url);

/**
 * The source hash each command version was written with. A script (or an include, or a
 * generated layout it uses) that changes must take the next version — a new command name —
 * and its hash here: two deployed versions then never run each other's script under one name.
 */
const PINNED: Record<ScriptCommandName, string> = {
  sy_admit_v2: '53648ccdfc98094f2aadf470e4c0cc72bb0d55a8',
  sy_start_reservation_v2: '158285fd5526de0be97ea33002c86ce35a869076',
  sy_release_reservation_v2: 'dd1fe9ec1b9df9c1f6f30965995ce49e762c4933',
  sy_recompute_inflight_v1: '784d8364185a67eb899826015f7b015b64d2be4a',
  sy_ledger_stats_v1: '19b0c6efc968071e64192eb59cba2473cd0ad41f',
  sy_reservation_positions_v1: '1c6897f7427a3d2f34aee96fe8bf484ecc22247b',
  sy_watch_stream_v1: '35573a21f5fd1dcc4f0ce85c00ca6954f94d296a',
  sy_job_submit_v2: '140161e177199b37d1304b7ec2a74c1ded6bc53e',
  sy_job_claim_v2: '692e00b14261e4af25d2aada1e4d5303c0eaf2b6',
  sy_job_event_v2: 'd661dbd3f8e6daa0d1b9f1c379e633ad4f9e488e',
  sy_job_finish_v2: '7cca3510c74b3fa5f6dc7c394e5075b99ffda008',
  sy_hold_lock_v1: '7ce661818f1fde14b54e6c6e310d4c30ec9aa2c4',
  sy_delete_if_equal_v1: 'e5a212447e6ae33c5b92e0c862054e8ac229b69b',
  sy_write_api_key_if_unchanged_v1: '6f1cbb89f6d8c07d39ec8257cc7bb686ea09eff6',
};

interface Header {
  description: string;
  /** Indexes of the `KEYS[i]` lines, in order. */
  keys: number[];
  /** Index of a `KEYS[i..]` line (keys given per call from i on), if any. */
  keysFrom?: number;
  argv: string[];
  returns: boolean;
}

/** The leading `--[[ … ]]` block of a script, read by the convention `scripts.ts` describes. */
function parseHeader(source: string): Header | undefined {
  const match = /^--\[\[\n([\s\S]*?)\n\]\]\n/.exec(source);
  if (!match) return undefined;
  const lines = match[1]!.split('\n');
  const header: Header = { description: lines.find((line) => line.trim() !== '')?.trim() ?? '', keys: [], argv: [], returns: false };
  for (const line of lines) {
    const fixed = /^\s*KEYS\[(\d+)\]\s+\S/.exec(line);
    if (fixed) header.keys.push(Number(fixed[1]));
    const tail = /^\s*KEYS\[(\d+)\.\.\]\s+\S/.exec(line);
    if (tail) header.keysFrom = Number(tail[1]);
    const argv = /^\s*(ARGV(?:\[\d+(?:\.\.)?\])?)\s+\S/.exec(line);
    if (argv) header.argv.push(argv[1]!);
    if (/^\s*Returns\s+\S/.test(line)) header.returns = true;
  }
  return header;
}

describe('Lua scripts: files, headers and the loader', () => {
  const definitions = scriptDefinitions();

  it('loads every .lua file in lua/ as exactly one command, and uses every include', () => {
    const files = readdirSync(LUA_DIR).filter((name) => name.endsWith('.lua'));
    expect(definitions.map((d) => d.file).sort()).toEqual(files.sort());
    const includes = readdirSync(new URL('includes/', LUA_DIR)).filter((name) => name.endsWith('.lua'));
    const used = new Set(
      [...files.map((file) => readFileSync(new URL(file, LUA_DIR), 'utf8')), ...includes.map((file) => readFileSync(new URL(`includes/${file}`, LUA_DIR), 'utf8'))].flatMap(
        (source) => [...source.matchAll(/^--@include "([a-z0-9-]+)"$/gm)].map((m) => `${m[1]}.lua`),
      ),
    );
    expect(includes.filter((file) => !used.has(file))).toEqual([]);
    for (const file of includes) expect(readFileSync(new URL(`includes/${file}`, LUA_DIR), 'utf8'), file).toMatch(/^-- \S/);
  });

  it.each(definitions.map((d) => [d.file, d] as const))('%s has a header whose KEYS match its file name, its body and defineCommand', (file, definition) => {
    const source = readFileSync(new URL(file, LUA_DIR), 'utf8');
    const header = parseHeader(source);
    expect(header, `${file} opens with a --[[ … ]] header`).toBeDefined();
    expect(header!.description.length).toBeGreaterThan(20);
    expect(header!.argv.length, `${file} lists its ARGV (or "ARGV none")`).toBeGreaterThan(0);
    expect(header!.returns, `${file} says what it returns`).toBe(true);

    const countInName = /-(\d+|n)\.lua$/.exec(file)![1]!;
    // KEYS[1..] are listed in order, one line each, then (only for `-n` scripts) the per-call rest.
    expect(header!.keys).toEqual(header!.keys.map((_, i) => i + 1));
    if (countInName === 'n') {
      expect(header!.keysFrom, `${file} says which KEYS are given per call`).toBe(header!.keys.length + 1);
      expect(definition.numberOfKeys).toBeUndefined();
    } else {
      expect(header!.keys.length).toBe(Number(countInName));
      expect(header!.keysFrom).toBeUndefined();
      expect(definition.numberOfKeys).toBe(Number(countInName));
      // The body uses exactly the keys the header lists.
      const body = definition.lua.slice(source.indexOf(']]'));
      const used = new Set([...body.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1])));
      expect([...used].sort((a, b) => a - b)).toEqual(header!.keys);
    }
  });

  it('defines every command once per connection, with the KEYS count of its file name', () => {
    const calls: Array<{ name: string; numberOfKeys: number | undefined }> = [];
    const connection = {
      defineCommand: (name: string, definition: { lua: string; numberOfKeys?: number }) => calls.push({ name, numberOfKeys: definition.numberOfKeys }),
    };
    expect(defineScripts(connection)).toBe(connection);
    defineScripts(connection);
    expect(calls.map((call) => call.name).sort()).toEqual(Object.keys(PINNED).sort());
    for (const call of calls) {
      const file = definitions.find((d) => d.name === call.name)!.file;
      const count = /-(\d+|n)\.lua$/.exec(file)![1]!;
      expect(call.numberOfKeys, call.name).toBe(count === 'n' ? undefined : Number(count));
    }
  });

  it('inlines each include once and leaves no include line behind', () => {
    for (const definition of definitions) {
      expect(definition.lua, definition.file).not.toContain('--@include');
      expect(definition.lua.match(/^local LAYOUT = /gm)?.length ?? 0, definition.file).toBeLessThanOrEqual(1);
    }
  });

  it('pins each command version to its source: a changed script takes a new version', () => {
    const hashes = Object.fromEntries(definitions.map((d) => [d.name, scriptBodyHash(d.lua)]));
    expect(hashes, 'a script changed: bump its _v<N> in scripts.ts (and at its callers) and pin the new hash here').toEqual(PINNED);
  });

  describe('on a real Redis', () => {
    let redis: RedisConnection;
    beforeAll(() => {
      redis = createRedis(testRedis(), 'worker');
    });
    afterAll(async () => {
      await closeRedis(redis);
    });

    it('compiles every resolved script', async () => {
      for (const definition of definitions) {
        await expect(redis.script('LOAD', definition.lua), definition.file).resolves.toMatch(/^[0-9a-f]{40}$/);
      }
    });
  });
});
