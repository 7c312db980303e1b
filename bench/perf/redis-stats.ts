/**
 * Reading what Redis says it did: `INFO commandstats` (calls and microseconds per command
 * since the last reset) and the slow log with a threshold of 0 (every command, with its
 * arguments, duration and client), grouped so that the commands a script or a transaction
 * ran are charged to it.
 *
 * Two facts about Redis 7.0 shape this module (checked against redis-server 7.0.15):
 * - commandstats counts a script's inner commands under their own names *and* includes
 *   their time in the EVALSHA's usec, so the sum over all commands counts script work
 *   twice; the same holds for commands run by EXEC.
 * - the slow log records inner commands too, from the fake client `?:0`, just before the
 *   script that ran them (the script is logged when it returns).
 * Commandstats cannot tell scripts apart (every script is `evalsha`); the slow log can, by
 * the SHA1 in its arguments.
 */

export interface CommandStat {
  calls: number;
  usec: number;
}

/** Commands whose time includes other commands' (scripts; EXEC for a transaction's). */
export const SCRIPT_COMMANDS: ReadonlySet<string> = new Set(['evalsha', 'eval', 'evalsha_ro', 'eval_ro', 'fcall', 'fcall_ro']);

/** `INFO commandstats` → calls and usec per command (`client|setname` style names for subcommands). */
export function parseCommandStats(info: string): Map<string, CommandStat> {
  const stats = new Map<string, CommandStat>();
  for (const line of info.split(/\r?\n/)) {
    const match = /^cmdstat_([^:]+):(.*)$/.exec(line.trim());
    if (!match) continue;
    const fields = new Map(match[2]!.split(',').map((pair) => pair.split('=') as [string, string]));
    const calls = Number(fields.get('calls'));
    const usec = Number(fields.get('usec'));
    if (Number.isFinite(calls) && Number.isFinite(usec)) stats.set(match[1]!.toLowerCase(), { calls, usec });
  }
  return stats;
}

/** What happened between two readings (commands with no new calls are left out). */
export function diffCommandStats(after: Map<string, CommandStat>, before: Map<string, CommandStat>): Map<string, CommandStat> {
  const delta = new Map<string, CommandStat>();
  for (const [name, stat] of after) {
    const was = before.get(name) ?? { calls: 0, usec: 0 };
    const calls = stat.calls - was.calls;
    if (calls > 0) delta.set(name, { calls, usec: Math.max(0, stat.usec - was.usec) });
  }
  return delta;
}

/**
 * `stats` less what `idle` (a reading with no load, `idleSeconds` long) would have added in
 * `seconds`: background work (heartbeats, sweeps, polling) that would otherwise be charged
 * to jobs, the more so the fewer jobs a busy machine completes.
 */
export function lessIdle(stats: Map<string, CommandStat>, seconds: number, idle: Map<string, CommandStat>, idleSeconds: number): Map<string, CommandStat> {
  const net = new Map<string, CommandStat>();
  const factor = idleSeconds > 0 ? seconds / idleSeconds : 0;
  for (const [name, stat] of stats) {
    const background = idle.get(name) ?? { calls: 0, usec: 0 };
    net.set(name, { calls: Math.max(0, stat.calls - background.calls * factor), usec: Math.max(0, stat.usec - background.usec * factor) });
  }
  return net;
}

export function totals(stats: Map<string, CommandStat>): CommandStat {
  let calls = 0;
  let usec = 0;
  for (const stat of stats.values()) {
    calls += stat.calls;
    usec += stat.usec;
  }
  return { calls, usec };
}

/**
 * Microseconds Redis spent executing commands, each counted once: every command's usec,
 * less the share of it that ran inside a script or transaction (already in that script's
 * usec). `innerShare` is, per command, the fraction of its calls that were inner ones (from
 * a slow-log sample); an inner call is assumed to cost what a top-level call of the same
 * command costs (most commands are only ever one or the other).
 */
export function topLevelUsec(stats: Map<string, CommandStat>, innerShare: Map<string, number>): number {
  let usec = 0;
  for (const [name, stat] of stats) usec += stat.usec * (1 - Math.min(1, Math.max(0, innerShare.get(name) ?? 0)));
  return usec;
}

export interface SlowlogEntry {
  id: number;
  durationUs: number;
  /** Lower-cased command name, then its arguments (Redis truncates long ones). */
  command: string;
  args: string[];
  /** `ip:port` of the client; `?:0` for the fake client scripts run commands from. */
  addr: string;
  name: string;
}

/** One `SLOWLOG GET` reply (an array of [id, time, duration, args, addr, name]), oldest first. */
export function parseSlowlog(reply: unknown): SlowlogEntry[] {
  if (!Array.isArray(reply)) return [];
  const entries: SlowlogEntry[] = [];
  for (const raw of reply) {
    if (!Array.isArray(raw) || raw.length < 4) continue;
    const argv = (Array.isArray(raw[3]) ? raw[3] : []).map((arg: unknown) => String(arg));
    entries.push({
      id: Number(raw[0]),
      durationUs: Number(raw[2]),
      command: String(argv[0] ?? '').toLowerCase(),
      args: argv.slice(1),
      addr: String(raw[4] ?? ''),
      name: String(raw[5] ?? ''),
    });
  }
  return entries.sort((a, b) => a.id - b.id);
}

export function isInnerEntry(entry: SlowlogEntry): boolean {
  return entry.addr.startsWith('?');
}

/** A command a client sent, with the commands it ran (a script's, or a transaction's for EXEC). */
export interface TopLevelCall {
  entry: SlowlogEntry;
  inner: SlowlogEntry[];
}

/**
 * Groups slow-log entries (oldest first, possibly in several batches) into the commands
 * clients sent: inner entries (`?:0`) belong to the script logged right after them; the
 * entries a client's EXEC ran are logged, from that client, right before the EXEC and after
 * its MULTI. `lost` counts entry ids that never arrived (the log overflowed between reads).
 */
export class SlowlogGrouper {
  readonly calls: TopLevelCall[] = [];
  lost = 0;
  /** Inner entries logged after the last script, or never followed by one. */
  orphans: SlowlogEntry[] = [];
  private pending: SlowlogEntry[] = [];
  private lastId: number | undefined;

  /**
   * `ignore`: entries to leave out (the benchmark's own commands) without counting them lost.
   * `gapBefore`: ids known to be missing before this batch (a `SLOWLOG GET` in the same
   * MULTI as the `SLOWLOG RESET` after it is logged and then reset away: one id per read).
   */
  add(entries: readonly SlowlogEntry[], ignore: (entry: SlowlogEntry) => boolean = () => false, gapBefore = 0): void {
    let allowed = gapBefore;
    for (const entry of entries) {
      if (this.lastId !== undefined && entry.id <= this.lastId) continue;
      if (this.lastId !== undefined && allowed > 0) {
        const skipped = Math.min(allowed, entry.id - this.lastId - 1);
        this.lastId += skipped;
        allowed = 0;
      }
      if (this.lastId !== undefined && entry.id > this.lastId + 1) {
        this.lost += entry.id - this.lastId - 1;
        // A script's inner entries may be the part that was lost; do not charge the rest to the next one.
        this.orphans.push(...this.pending);
        this.pending = [];
      }
      this.lastId = entry.id;
      if (ignore(entry)) continue;
      if (isInnerEntry(entry)) {
        this.pending.push(entry);
        continue;
      }
      if (SCRIPT_COMMANDS.has(entry.command)) {
        this.calls.push({ entry, inner: this.pending });
        this.pending = [];
        continue;
      }
      this.orphans.push(...this.pending);
      this.pending = [];
      if (entry.command === 'exec') {
        const inner: SlowlogEntry[] = [];
        while (this.calls.length > 0) {
          const last = this.calls.at(-1)!;
          if (last.entry.addr !== entry.addr || last.entry.command === 'multi') break;
          this.calls.pop();
          inner.unshift(last.entry, ...last.inner);
        }
        this.calls.push({ entry, inner });
        continue;
      }
      this.calls.push({ entry, inner: [] });
    }
  }
}

/**
 * A key with what varies per job, agent or run replaced, so that keys of the same kind add
 * up: the run's prefix → `{p}`, 21-character job ids → `<id>`, long numbers → `<n>`.
 */
export function keyPattern(key: string, prefix: string): string {
  let pattern = prefix && key.startsWith(prefix) ? `{p}${key.slice(prefix.length)}` : key;
  pattern = pattern.replace(/(^|[^A-Za-z0-9_-])[A-Za-z0-9_-]{21}(?=$|[^A-Za-z0-9_-])/g, '$1<id>');
  pattern = pattern.replace(/bench-agent-[a-z0-9]{6}/g, '<agent>');
  pattern = pattern.replace(/\b\d{6,}\b/g, '<n>');
  return pattern;
}

/** Which part of Switchyard owns a key, from its pattern (see packages/protocol keys.ts). */
export function keyModule(pattern: string): string {
  if (pattern.startsWith('{p}:q:')) return 'bullmq';
  if (/^\{p\}:job:\{[^}]*\}:(seq|events)$/.test(pattern)) return 'event-log';
  if (/^\{p\}:job:\{[^}]*\}$/.test(pattern)) return 'job-index';
  if (/^\{p\}:job:\{[^}]*\}:streamed$/.test(pattern)) return 'stream-presence';
  if (pattern.startsWith('{p}:{adm}:')) return 'admission';
  if (pattern.startsWith('{p}:ch:')) return 'pubsub';
  if (/^\{p\}:(\{fleet\}:agents?|models|modelinfo|vram|lease)(:|$)/.test(pattern)) return 'fleet';
  if (pattern.startsWith('{p}:{auth}') || pattern.startsWith('{p}:session')) return 'auth';
  return pattern.startsWith('{p}') ? 'other' : 'none';
}

/** The keys of a command as the slow log shows it (first key only for most commands). */
export function commandKeys(entry: SlowlogEntry): string[] {
  if (SCRIPT_COMMANDS.has(entry.command)) {
    const count = Number(entry.args[1]);
    return Number.isFinite(count) ? entry.args.slice(2, 2 + count) : [];
  }
  const first = entry.args[0];
  if (first === undefined) return [];
  if (['multi', 'exec', 'info', 'ping', 'client', 'config', 'slowlog', 'script', 'select', 'hello'].some((c) => entry.command.startsWith(c))) return [];
  return [first];
}
