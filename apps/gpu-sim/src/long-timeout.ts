/**
 * setTimeout for any delay. Node clamps delays above 2^31-1 ms (~24.8 days) to 1 ms, which
 * would unload a model with `keep_alive: "720h"` at once; longer delays are chained here.
 */
const MAX_DELAY_MS = 2 ** 31 - 1;

export interface LongTimeout {
  cancel(): void;
}

export function setLongTimeout(delayMs: number, callback: () => void): LongTimeout {
  let timer: NodeJS.Timeout | undefined;
  const deadline = Date.now() + delayMs;
  const arm = (remaining: number) => {
    timer = setTimeout(
      () => {
        const left = deadline - Date.now();
        if (left > 0 && remaining > MAX_DELAY_MS) arm(left);
        else callback();
      },
      Math.max(0, Math.min(remaining, MAX_DELAY_MS)),
    );
    // An expiry alone must not keep a process alive; the HTTP server does that.
    timer.unref();
  };
  arm(delayMs);
  return { cancel: () => clearTimeout(timer) };
}
