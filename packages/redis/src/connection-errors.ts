/**
 * Reporting a Redis that is gone without drowning the log. ioredis emits `error` on every
 * reconnect attempt (and BullMQ re-emits each on every worker), so an unreachable Redis
 * once printed ~430 warnings in 20 s, none of which said which setting to fix.
 */

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

  /** Forgets what was reported: the next failure (a new outage) is reported at once. */
  reset(): void {
    this.kinds.clear();
  }
}

/** Whether the error says nothing answers at Redis's address (refused, unknown host, timed out, dropped). */
export function isRedisUnreachable(error: unknown): boolean {
  const code = codeOf(error);
  return code !== undefined && UNREACHABLE_CODES.has(code);
}

/** How many reports a throttle folded into this error (0 when none). */
export function repeatsOf(error: unknown): number {
  const repeats = (error as { repeats?: unknown } | null)?.repeats;
  return typeof repeats === 'number' && repeats > 0 ? repeats : 0;
}

/** What `describeRedisTarget` names a Redis Cluster by: its seed nodes, no credentials in them. */
const CLUSTER_DESCRIPTION = 'cluster ';

/** The URL with its password masked, fit for a log line (a cluster's description as it is). */
export function redactRedisUrl(url: string): string {
  if (url.startsWith(CLUSTER_DESCRIPTION)) return url;
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
  const setting = url.startsWith(CLUSTER_DESCRIPTION) ? 'REDIS_CLUSTER_NODES' : 'REDIS_URL';
  if (isRedisUnreachable(error)) return `cannot reach Redis at ${where}: ${codeOf(error)} — start Redis or set ${setting}`;
  if (/NOAUTH|WRONGPASS|invalid password|invalid username/i.test(message)) {
    return `Redis at ${where} refused the credentials (${message}) — set REDIS_URL with the right user and password (redis://user:password@host:port)`;
  }
  return `Redis at ${where}: ${message}`;
}
