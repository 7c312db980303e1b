import type { OutputStream } from './io.js';

/**
 * A status line on stderr while a job waits ("queued: position 2 of 5", "loading …"). On a
 * terminal it is one line rewritten in place, with the elapsed time ticking; otherwise each
 * new status is printed once, on its own line, so logs stay readable.
 */
export class Progress {
  private shown = false;
  private last = '';
  private text = '';
  private readonly startedAt = Date.now();
  private timer: ReturnType<typeof setInterval> | undefined;

  constructor(
    private readonly out: OutputStream,
    private readonly enabled: boolean,
  ) {
    if (enabled && out.isTTY) {
      this.timer = setInterval(() => this.render(), 250);
      this.timer.unref?.();
    }
  }

  set(text: string): void {
    if (!this.enabled) return;
    this.text = text;
    if (this.out.isTTY) this.render();
    else if (text !== this.last) {
      this.last = text;
      this.out.write(`${text}\n`);
    }
  }

  private render(): void {
    if (!this.text) return;
    const elapsed = ((Date.now() - this.startedAt) / 1000).toFixed(0);
    const line = `${this.text} (${elapsed}s)`;
    const width = this.out.columns ?? 80;
    this.out.write(`\r\x1b[K${line.slice(0, Math.max(10, width - 1))}`);
    this.shown = true;
  }

  /** Removes the status line (before tokens go to stdout on the same terminal). */
  clear(): void {
    this.text = '';
    if (this.shown && this.out.isTTY) this.out.write('\r\x1b[K');
    this.shown = false;
  }

  stop(): void {
    this.clear();
    if (this.timer) clearInterval(this.timer);
  }
}
