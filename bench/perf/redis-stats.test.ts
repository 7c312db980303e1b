import { describe, expect, it } from 'vitest';
import {
  commandKeys,
  diffCommandStats,
  keyModule,
  keyPattern,
  lessIdle,
  parseCommandStats,
  parseSlowlog,
  SlowlogGrouper,
  topLevelUsec,
  totals,
  type SlowlogEntry,
} from './redis-stats.js';

const INFO = [
  '# Commandstats',
  'cmdstat_evalsha:calls=10,usec=500,usec_per_call=50.00,rejected_calls=0,failed_calls=1',
  'cmdstat_hget:calls=40,usec=40,usec_per_call=1.00,rejected_calls=0,failed_calls=0',
  'cmdstat_client|setname:calls=2,usec=3,usec_per_call=1.50,rejected_calls=0,failed_calls=0',
  'cmdstat_XRANGE:calls=5,usec=25,usec_per_call=5.00,rejected_calls=0,failed_calls=0',
  '',
].join('\r\n');

describe('commandstats', () => {
  it('parses calls and usec per command, subcommands and case included', () => {
    const stats = parseCommandStats(INFO);
    expect(stats.get('evalsha')).toEqual({ calls: 10, usec: 500 });
    expect(stats.get('client|setname')).toEqual({ calls: 2, usec: 3 });
    expect(stats.get('xrange')).toEqual({ calls: 5, usec: 25 });
    expect(stats.size).toBe(4);
  });

  it('diffs two readings, leaving out commands without new calls', () => {
    const before = parseCommandStats(INFO);
    const after = parseCommandStats(
      INFO.replace('calls=10,usec=500', 'calls=15,usec=800').replace('cmdstat_hget:calls=40,usec=40', 'cmdstat_hget:calls=60,usec=61') +
        'cmdstat_publish:calls=3,usec=6,usec_per_call=2.00\r\n',
    );
    const delta = diffCommandStats(after, before);
    expect(Object.fromEntries(delta)).toEqual({ evalsha: { calls: 5, usec: 300 }, hget: { calls: 20, usec: 21 }, publish: { calls: 3, usec: 6 } });
    expect(totals(delta)).toEqual({ calls: 28, usec: 327 });
  });

  it('counts each microsecond once: inner calls are already in their script', () => {
    const stats = new Map([
      ['evalsha', { calls: 10, usec: 500 }],
      ['hget', { calls: 40, usec: 40 }],
      ['xrange', { calls: 5, usec: 25 }],
      ['hmget', { calls: 4, usec: 8 }],
    ]);
    const innerShare = new Map([
      ['hget', 1],
      ['hmget', 0.75],
      ['evalsha', 0],
    ]);
    expect(topLevelUsec(stats, innerShare)).toBe(500 + 25 + 2);
  });

  it('subtracts background at its rate over the run', () => {
    const run = new Map([
      ['hget', { calls: 100, usec: 50 }],
      ['zadd', { calls: 4, usec: 4 }],
    ]);
    const idle = new Map([
      ['hget', { calls: 10, usec: 5 }],
      ['zadd', { calls: 8, usec: 8 }],
    ]);
    expect(Object.fromEntries(lessIdle(run, 6, idle, 3))).toEqual({ hget: { calls: 80, usec: 40 }, zadd: { calls: 0, usec: 0 } });
  });
});

function entry(id: number, args: string[], addr = '127.0.0.1:5000', name = 'sy-api', durationUs = 1): unknown[] {
  return [id, 1_700_000_000, durationUs, args, addr, name];
}

describe('slow log', () => {
  it('parses replies oldest first', () => {
    const entries = parseSlowlog([entry(7, ['SET', 'a', '1']), entry(6, ['GET', 'a'], '?:0', '', 2)]);
    expect(entries.map((e) => [e.id, e.command, e.args, e.addr, e.durationUs])).toEqual([
      [6, 'get', ['a'], '?:0', 2],
      [7, 'set', ['a', '1'], '127.0.0.1:5000', 1],
    ]);
    expect(parseSlowlog(null)).toEqual([]);
  });

  it("charges a script's inner commands (logged just before it, from ?:0) to it, across batches", () => {
    const grouper = new SlowlogGrouper();
    grouper.add(parseSlowlog([entry(1, ['INCR', 's'], '?:0', ''), entry(2, ['XADD', 'e'], '?:0', '')]));
    grouper.add(parseSlowlog([entry(3, ['EVALSHA', 'abc', '2', 's', 'e'], '127.0.0.1:1', 'sy-agent', 30), entry(4, ['XRANGE', 'e', '-', '+'])]));
    expect(grouper.calls.map((c) => [c.entry.command, c.inner.map((e) => e.command)])).toEqual([
      ['evalsha', ['incr', 'xadd']],
      ['xrange', []],
    ]);
    expect(grouper.lost).toBe(0);
  });

  it('does not count the ids a read is known to lose', () => {
    const grouper = new SlowlogGrouper();
    grouper.add(parseSlowlog([entry(1, ['GET', 'a']), entry(2, ['GET', 'b'])]));
    grouper.add(parseSlowlog([entry(4, ['GET', 'c']), entry(5, ['GET', 'd'])]), () => false, 1);
    expect(grouper.lost).toBe(0);
    grouper.add(parseSlowlog([entry(8, ['GET', 'e'])]), () => false, 1);
    expect(grouper.lost).toBe(1);
    expect(grouper.calls).toHaveLength(5);
  });

  it("charges a transaction's commands to its EXEC, not the client's earlier commands", () => {
    const grouper = new SlowlogGrouper();
    const c = '127.0.0.1:9';
    grouper.add(
      parseSlowlog([
        entry(1, ['PING'], c),
        entry(2, ['MULTI'], c),
        entry(3, ['GET', 'x'], '127.0.0.1:8'),
        entry(4, ['HSET', 'h', 'f', 'v'], c),
        entry(5, ['EXPIRE', 'h', '10'], c),
        entry(6, ['EXEC'], c),
      ]),
    );
    expect(grouper.calls.map((call) => [call.entry.command, call.inner.map((e) => e.command)])).toEqual([
      ['ping', []],
      ['multi', []],
      ['get', []],
      ['exec', ['hset', 'expire']],
    ]);
  });

  it('counts missing ids as lost, skips ignored entries without counting them, and keeps orphans apart', () => {
    const grouper = new SlowlogGrouper();
    grouper.add(
      parseSlowlog([
        entry(1, ['HGET', 'k', 'f'], '?:0', ''),
        entry(4, ['EVALSHA', 'abc', '0'], '127.0.0.1:1', 'sy-agent'),
        entry(5, ['SLOWLOG', 'GET', '-1'], '127.0.0.1:2', 'bench-control'),
        entry(6, ['GET', 'a']),
      ]),
      (e) => e.name === 'bench-control',
    );
    expect(grouper.lost).toBe(2);
    expect(grouper.orphans.map((e) => e.command)).toEqual(['hget']);
    expect(grouper.calls.map((c) => [c.entry.command, c.inner.length])).toEqual([
      ['evalsha', 0],
      ['get', 0],
    ]);
  });
});

describe('key patterns', () => {
  const prefix = 'bench-throughput-1764633600000';
  it('replaces the prefix, job ids and long numbers, and names the owning module', () => {
    const id = 'V1StGXR8_Z5jdHi6B-myT';
    expect(keyPattern(`${prefix}:job:{${id}}:events`, prefix)).toBe('{p}:job:{<id>}:events');
    expect(keyModule('{p}:job:{<id>}:events')).toBe('event-log');
    expect(keyModule(keyPattern(`${prefix}:job:{${id}}`, prefix))).toBe('job-index');
    expect(keyPattern(`${prefix}:q:qwen2.5-0.5b:${id}:lock`, prefix)).toBe('{p}:q:qwen2.5-0.5b:<id>:lock');
    expect(keyModule('{p}:q:qwen2.5-0.5b:wait')).toBe('bullmq');
    expect(keyModule(keyPattern(`${prefix}:{adm}:jobs`, prefix))).toBe('admission');
    expect(keyModule(keyPattern(`${prefix}:ch:job:{${id}}`, prefix))).toBe('pubsub');
    expect(keyModule(keyPattern(`${prefix}:job:{${id}}:streamed`, prefix))).toBe('stream-presence');
    expect(keyPattern(`${prefix}:{fleet}:agent:bench-agent-a1b2c3`, prefix)).toBe('{p}:{fleet}:agent:<agent>');
    expect(keyModule('{p}:{fleet}:agent:<agent>')).toBe('fleet');
    expect(keyModule('{p}:{fleet}:agents')).toBe('fleet');
    expect(keyPattern('other:1764633600123', prefix)).toBe('other:<n>');
    expect(keyModule('other:<n>')).toBe('none');
  });

  it("takes a script's keys from its numkeys, a plain command's first argument", () => {
    const script = parseSlowlog([entry(1, ['EVALSHA', 'abc', '2', 'k1', 'k2', 'arg'])])[0] as SlowlogEntry;
    expect(commandKeys(script)).toEqual(['k1', 'k2']);
    expect(commandKeys(parseSlowlog([entry(1, ['XRANGE', 'k', '-', '+'])])[0]!)).toEqual(['k']);
    expect(commandKeys(parseSlowlog([entry(1, ['MULTI'])])[0]!)).toEqual([]);
  });
});
