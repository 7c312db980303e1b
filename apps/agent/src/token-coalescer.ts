/**
 * Batches tokens into fewer stream events without delaying the first one.
 *
 * Every event costs a Redis round trip and a pub/sub fan-out; at 100+ tokens/s per
 * stream, one event per token is what limits a relay. The first token of a job is
 * emitted at once (time to first token is what users feel); later tokens wait at most
 * `windowMs` and leave together.
 */
export class TokenCoalescer {
  private buffer = '';
  private timer: NodeJS.Timeout | undefined;
  private emittedFirst = false;

  constructor(
    private readonly windowMs: number,
    private readonly emit: (text: string) => void,
  ) {}

  push(text: string): void {
    if (text.length === 0) return;
    if (!this.emittedFirst || this.windowMs === 0) {
      this.emittedFirst = true;
      this.emit(text);
      return;
    }
    this.buffer += text;
    this.timer ??= setTimeout(() => this.flush(), this.windowMs);
  }

  /** Emits whatever is buffered now (before a terminal event, so no token is lost). */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.buffer.length === 0) return;
    const text = this.buffer;
    this.buffer = '';
    this.emit(text);
  }

  /** Drops buffered text without emitting it (the job was cancelled). */
  discard(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.buffer = '';
  }
}
