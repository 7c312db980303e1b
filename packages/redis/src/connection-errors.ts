/**
 * Reporting a Redis that is gone without drowning the log. ioredis emits `error` on every
 * reconnect attempt (and BullMQ re-emits each on every worker), so an unreachable Redis
 * once printed ~430 warnings in 20 s, none of which said which setting to fix.
 */
import { CLUSTER_DESCRIPTION, SENTINEL_DESCRIPTION } from './redis-target.js';

/** Errors that mean "nothing answers at that address", as opposed to a Redis that refused us. */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET', 'EPIPE']);

function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Lets the first error of each kind through at once, then at most one per `intervalMs`,
 * counting what it held back. Kinds are the error's code (else its message), so a new
 * kind of trouble (a wrong password after a refused connection) is never hidden behind an
 * old one.
 */
export class ErrorThrottle {
  private readonly kinds = new Map<string, { reportedAt: number; held: number }>();

  constructor(
    readonly intervalMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Whether to report `error` now. When it does, `repeats` says how many like it were held
   * back since the previous report (an error that already carries `repeats`, folded by a
   * throttle upstream, counts for that many more).
   */
  pass(error: unknown): { repeats: number } | undefined {
    const kind = codeOf(error) ?? messageOf(error);
    const weight = 1 + repeatsOf(error);
    const now = this.now();
    const seen = this.kinds.get(kind);
    if (seen && now - seen.reportedAt < this.intervalMs) {
      seen.held += weight;
      return undefined;
    }
    // A handful of kinds at most in practice; the cap only guards against unbounded messages.
    if (!seen && this.kinds.size >= 100) this.kinds.clear();
    const repeats = (seen?.held ?? 0) + weight - 1;
    this.kinds.set(kind, { reportedAt: now, held: 0 });
    return { repeats };
  }

  /**
   * For a client's `emit('error', error)`: whether to emit it now, marking an error that is
   * emitted with the `repeats` held back before it.
   */
  admit(error: unknown): boolean {
    const verdict = this.pass(error);
    if (!verdict) return false;
    if (verdict.repeats > 0 && error instanceof Error) Object.assign(error, { repeats: verdict.repeats });
    return true;
  }

  /** Forgets what was reported: the next failure (a new outage) is reported at once. */
  reset(): void {
    this.kinds.clear();
  }
}

/** Whether the error says nothing answers at Redis's address (refused, unknown host, timed out, dropped), or no sentinel does. */
export function isRedisUnreachable(error: unknown): boolean {
  const code = codeOf(error);
  // ioredis's Sentinel connector reports sentinels it cannot reach in words only.
  return (code !== undefined && UNREACHABLE_CODES.has(code)) || /^All sentinels are unreachable/.test(messageOf(error));
}

/** How many reports a throttle folded into this error (0 when none). */
export function repeatsOf(error: unknown): number {
  const repeats = (error as { repeats?: unknown } | null)?.repeats;
  return typeof repeats === 'number' && repeats > 0 ? repeats : 0;
}

/** The URL with its password masked, fit for a log line (a cluster's or Sentinel group's description as it is: no credentials in them). */
export function redactRedisUrl(url: string): string {
  if (url.startsWith(CLUSTER_DESCRIPTION) || url.startsWith(SENTINEL_DESCRIPTION)) return url;
  try {
    const parsed = new URL(url);
    if (!parsed.password) return url;
    parsed.password = '***';
    return parsed.toString();
  } catch {
    return '(unparseable REDIS_URL)';
  }
}

/**
 * One line naming the setting and the fix: `cannot reach Redis at redis://…: ECONNREFUSED —
 * start Redis or set REDIS_URL`, or for a Redis that answers and refuses, what it said.
 */
export function describeRedisError(url: string, error: unknown): string {
  const where = redactRedisUrl(url);
  const message = messageOf(error);
  const sentinel = url.startsWith(SENTINEL_DESCRIPTION);
  const setting = url.startsWith(CLUSTER_DESCRIPTION) ? 'REDIS_CLUSTER_NODES' : sentinel ? 'REDIS_SENTINELS and REDIS_SENTINEL_MASTER' : 'REDIS_URL';
  if (isRedisUnreachable(error)) return `cannot reach Redis at ${where}: ${codeOf(error) ?? message} — start Redis or set ${setting}`;
  if (/NOAUTH|WRONGPASS|invalid password|invalid username/i.test(message)) {
    return sentinel
      ? `Redis at ${where} refused the credentials (${message}) — set REDIS_USERNAME and REDIS_PASSWORD for the master, REDIS_SENTINEL_USERNAME and REDIS_SENTINEL_PASSWORD for the sentinels`
      : `Redis at ${where} refused the credentials (${message}) — set REDIS_URL with the right user and password (redis://user:password@host:port)`;
  }
  return `Redis at ${where}: ${message}`;
}
