/**
 * What a client saw of one job's event stream, across every reconnect, and the checks the
 * chaos run makes on it: `seq` must go 1, 2, 3… with no gap and no repeat (a reconnect with
 * Last-Event-ID gets exactly what came after), and the text a client would show is the
 * tokens since the last `restarted` (which voids what came before it; `resumed` continues).
 */

export interface SeenEvent {
  seq: number;
  type: string;
  /** Milliseconds since the start of the run, when the client read it. */
  at: number;
  code?: string;
}

export class Transcript {
  readonly events: SeenEvent[] = [];
  lastSeq = 0;
  gaps = 0;
  /** Events whose seq was missing (the sum of the gaps' widths). */
  missing = 0;
  dups = 0;
  /** What the client shows: tokens since the last `restarted`. */
  text = '';
  /** Characters voided by `restarted` events. */
  voidedChars = 0;
  /** Read times of `restarted` events. */
  readonly restartedAt: number[] = [];
  /** Read times of `resumed` events. */
  readonly resumedAt: number[] = [];
  terminal: { type: 'done' | 'error'; at: number; code?: string; message?: string } | undefined;
  /** Events after the terminal one (there must be none). */
  afterTerminal = 0;
  /** Longest time between two events read (or from the first connect to the first event). */
  maxSilenceMs = 0;
  private lastAt: number;

  constructor(startedAt: number) {
    this.lastAt = startedAt;
  }

  get lastEventAt(): number {
    return this.lastAt;
  }

  /**
   * One event as read. A repeat (seq at or below the last one read) is counted and ignored,
   * as a client that tracks Last-Event-ID would; a gap is counted and the event taken.
   */
  add(seq: number, type: string, data: Record<string, unknown>, at: number): void {
    this.maxSilenceMs = Math.max(this.maxSilenceMs, at - this.lastAt);
    this.lastAt = at;
    if (!Number.isInteger(seq) || seq <= this.lastSeq) {
      this.dups++;
      return;
    }
    if (seq !== this.lastSeq + 1) {
      this.gaps++;
      this.missing += seq - this.lastSeq - 1;
    }
    this.lastSeq = seq;
    const code = typeof data.code === 'string' ? data.code : undefined;
    this.events.push({ seq, type, at, ...(code !== undefined && { code }) });
    if (this.terminal) {
      this.afterTerminal++;
      return;
    }
    if (type === 'token') this.text += typeof data.text === 'string' ? data.text : '';
    else if (type === 'restarted') {
      this.voidedChars += this.text.length;
      this.text = '';
      this.restartedAt.push(at);
    } else if (type === 'resumed') this.resumedAt.push(at);
    else if (type === 'done' || type === 'error') {
      this.terminal = { type, at, ...(code !== undefined && { code }), ...(typeof data.message === 'string' && { message: data.message }) };
    }
  }

  /** The event types in order, runs collapsed: `queued started token×12 resumed token×30 done`. */
  shape(): string {
    const parts: Array<{ type: string; n: number }> = [];
    for (const e of this.events) {
      const last = parts.at(-1);
      if (last && last.type === e.type) last.n++;
      else parts.push({ type: e.type, n: 1 });
    }
    return parts.map((p) => (p.n > 1 ? `${p.type}×${p.n}` : p.type)).join(' ');
  }

  /** Silence from the last event read to `now` (for a stream that never ended). */
  silenceUntil(now: number): number {
    return now - this.lastAt;
  }
}

/**
 * How a completed job's shown text compares with what it should be (the same request
 * answered by a simulator directly): `duplicated` when it is longer and holds the expected
 * text's beginning twice or a repeat of one of its stretches (an attempt that continued
 * after text that was not voided), `different` otherwise.
 */
export function compareText(shown: string, expected: string): 'equal' | 'duplicated' | 'truncated' | 'different' {
  if (shown === expected) return 'equal';
  if (shown.length > expected.length) {
    const head = expected.slice(0, Math.min(40, expected.length));
    if (head.length > 0 && shown.indexOf(head, 1) > 0) return 'duplicated';
    return 'different';
  }
  if (expected.startsWith(shown)) return 'truncated';
  return 'different';
}
