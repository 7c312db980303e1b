/**
 * Plays one answer out in (scaled) real time: prompt evaluation first, then one token every
 * 1/tokens_per_s seconds. Token times are scheduled from the start of evaluation rather than
 * from the previous token, so timer lateness does not accumulate; when the schedule is behind
 * (or time_scale is 0) tokens go out back to back, yielding to the event loop every few tokens
 * so other requests and disconnect notices still get their turn.
 *
 * A test's hold (holds.ts) pauses the answer after a number of tokens; the schedule then
 * restarts from the release, so the tokens after it keep their pace instead of bursting out.
 */
import { setImmediate as yieldToLoop, setTimeout as sleep } from 'node:timers/promises';
import type { Pause } from './holds.js';
import type { SimCounters } from './sim-counters.js';
import type { GeneratedToken, ResponsePlan } from './token-generator.js';

export interface GenerationInput {
  plan: ResponsePlan;
  promptTokens: number;
  tokensPerS: number;
  promptTokensPerS: number;
  timeScale: number;
  signal: AbortSignal;
  counters: SimCounters;
  /** Called for every token in order; a returned promise is awaited (stream backpressure). */
  onToken: (token: GeneratedToken) => void | Promise<void>;
  /** Set when a test's hold caught this generation. */
  pause?: Pause | undefined;
}

export interface GenerationResult {
  evalCount: number;
  doneReason: 'stop' | 'length';
  /** Wall-clock nanoseconds. */
  promptEvalNs: number;
  evalNs: number;
}

export function monotonicNs(): bigint {
  return process.hrtime.bigint();
}

/** Nanoseconds between two monotonic readings, never 0 (Ollama drops zero durations). */
export function elapsedNs(from: bigint, to: bigint = monotonicNs()): number {
  return Math.max(1, Number(to - from));
}

const YIELD_EVERY = 16;

export async function runGeneration(input: GenerationInput): Promise<GenerationResult> {
  const { signal, timeScale } = input;
  signal.throwIfAborted();

  const promptStart = monotonicNs();
  const promptDelayMs = (input.promptTokens / input.promptTokensPerS) * 1_000 * timeScale;
  if (promptDelayMs >= 1) await sleep(promptDelayMs, undefined, { signal });
  else await yieldToLoop(undefined, { signal });
  const promptEvalNs = elapsedNs(promptStart);

  const evalStart = monotonicNs();
  let startMs = performance.now();
  const intervalMs = (1_000 / input.tokensPerS) * timeScale;
  const { pause } = input;
  let paused = false;
  const holdHere = async (at: Pause) => {
    paused = true;
    const heldFrom = performance.now();
    await at.wait(signal);
    startMs += performance.now() - heldFrom;
  };
  let count = 0;
  for (const token of input.plan.tokens()) {
    if (pause && !paused && count === pause.afterTokens) await holdHere(pause);
    const waitMs = startMs + (count + 1) * intervalMs - performance.now();
    if (waitMs >= 1) await sleep(waitMs, undefined, { signal });
    else if (count % YIELD_EVERY === YIELD_EVERY - 1) await yieldToLoop(undefined, { signal });
    signal.throwIfAborted();
    await input.onToken(token);
    count++;
    input.counters.tokensGeneratedTotal++;
  }
  // An answer shorter than the hold's token count still must not end before its release.
  if (pause && !paused) await holdHere(pause);
  signal.throwIfAborted();
  return { evalCount: count, doneReason: input.plan.doneReason, promptEvalNs, evalNs: elapsedNs(evalStart) };
}
