/**
 * Holds: a test's way to keep generations open until it says so.
 *
 * A test that acts on a running job (cancels it, queues another behind it, reads it half-way)
 * must not race the answer's end. A longer answer only moves that race further out: a loaded
 * machine can still lose it. A hold removes it instead. A generation the hold catches sends its
 * first `afterTokens` tokens and then waits — for `release()`, for its client to leave (the
 * usual cancellation path), or for the server to shut down — before it goes on. Its answer is
 * otherwise unchanged (same tokens, same final line), so a released job ends as it would have.
 *
 * Nothing is held unless a test placed a hold: the Ollama wire is untouched by default, and the
 * hold is matched on the prompt, so it works whichever client or broker wire sent the request.
 */

export interface HoldOptions {
  /**
   * Which generations to catch: those whose prompt text (generate: system, prompt and suffix
   * joined by newlines; chat: `role: content` lines) contains this string or matches this
   * RegExp. Every generation when absent.
   */
  prompt?: string | RegExp;
  /**
   * Tokens a caught generation sends before it pauses; 0 (the default) pauses it before its
   * first token — and so, for a stream, before its response headers, which go out with the
   * first line as Ollama's do. An answer shorter than that pauses before its final line
   * instead, so a held generation never ends on its own.
   */
  afterTokens?: number;
}

export interface Hold {
  /** Generations paused at this hold so far (including ones released since). */
  readonly paused: number;
  /**
   * Resolves once `count` generations have paused at this hold; rejects after `timeoutMs`
   * with how many did, so a test that waits for a job that never came fails saying so.
   */
  reached(count?: number, timeoutMs?: number): Promise<void>;
  /** Lets every paused generation go on and stops catching new ones. Safe to call again. */
  release(): void;
}

/** What a caught generation is given: where to pause, and how to wait there. */
export interface Pause {
  readonly afterTokens: number;
  /** Waits until the hold is released; rejects with the signal's reason when it aborts first. */
  wait(signal: AbortSignal): Promise<void>;
}

class PlacedHold implements Hold {
  paused = 0;
  released = false;
  readonly afterTokens: number;
  private readonly waiting = new Set<() => void>();
  private readonly watchers = new Set<{ count: number; resolve: () => void }>();

  constructor(
    private readonly match: (prompt: string) => boolean,
    afterTokens: number,
    private readonly onRelease: (hold: PlacedHold) => void,
  ) {
    this.afterTokens = afterTokens;
  }

  catches(prompt: string): boolean {
    return !this.released && this.match(prompt);
  }

  reached(count = 1, timeoutMs = 15_000): Promise<void> {
    if (this.paused >= count) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const watcher = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.watchers.delete(watcher);
        reject(new Error(`hold: ${this.paused} of ${count} generation(s) paused within ${timeoutMs} ms`));
      }, timeoutMs);
      // Only a deadline for a waiting test, never a reason to keep the process alive.
      timer.unref();
      this.watchers.add(watcher);
    });
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    this.onRelease(this);
    for (const go of this.waiting) go();
    this.waiting.clear();
  }

  wait(signal: AbortSignal): Promise<void> {
    if (this.released) return Promise.resolve();
    if (signal.aborted) return Promise.reject(signal.reason);
    this.paused++;
    for (const watcher of this.watchers) {
      if (this.paused >= watcher.count) {
        this.watchers.delete(watcher);
        watcher.resolve();
      }
    }
    return new Promise<void>((resolve, reject) => {
      const go = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.waiting.delete(go);
        reject(signal.reason);
      };
      this.waiting.add(go);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** The holds placed on one simulator, oldest first. */
export class Holds {
  private readonly placed: PlacedHold[] = [];

  place(options: HoldOptions = {}): Hold {
    const afterTokens = options.afterTokens ?? 0;
    if (!Number.isInteger(afterTokens) || afterTokens < 0) throw new RangeError(`afterTokens must be a whole number ≥ 0, not ${afterTokens}`);
    const pattern = options.prompt;
    const match =
      pattern === undefined
        ? () => true
        : typeof pattern === 'string'
          ? (prompt: string) => prompt.includes(pattern)
          : (prompt: string) => {
              pattern.lastIndex = 0; // a /g or /y pattern must not remember the last prompt
              return pattern.test(prompt);
            };
    const hold = new PlacedHold(match, afterTokens, (done) => {
      const index = this.placed.indexOf(done);
      if (index !== -1) this.placed.splice(index, 1);
    });
    this.placed.push(hold);
    return hold;
  }

  /**
   * The pause for a generation starting now with this prompt: the oldest unreleased hold that
   * catches it, or none. Decided once, at the start, so a hold placed later leaves it alone.
   */
  catch(prompt: string): Pause | undefined {
    const hold = this.placed.find((candidate) => candidate.catches(prompt));
    return hold && { afterTokens: hold.afterTokens, wait: (signal) => hold.wait(signal) };
  }
}
