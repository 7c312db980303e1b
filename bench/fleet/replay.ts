/**
 * Plays a trace against a policy in (scaled) real time: request i is sent at
 * start + at_s × time_scale, whether or not earlier ones have finished — an open-loop load
 * generator, like real users. Bounded: every request has a timeout, and whatever is still
 * running a fixed time after the last submission is aborted and counted as failed.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Policy } from './policy.js';
import type { RequestRecord } from './records.js';
import type { Trace } from './trace.js';

export interface ReplayOptions {
  timeScale: number;
  /** Per-request limit, wall ms. */
  requestTimeoutMs: number;
  /** After the last submission, how long stragglers may run, wall ms. */
  drainTimeoutMs: number;
  log: (line: string) => void;
}

export interface ReplayResult {
  records: RequestRecord[];
  /** Epoch ms of trace time 0. */
  startedAt: number;
  /** Epoch ms where the measured part begins. */
  warmupEndAt: number;
  lastSubmitAt: number;
  endedAt: number;
}

export async function replay(trace: Trace, policy: Policy, options: ReplayOptions): Promise<ReplayResult> {
  const scale = options.timeScale * 1_000;
  const startedAt = Date.now() + 100;
  const warmupEndAt = startedAt + trace.params.warmup_s * scale;
  const pending = new Set<Promise<RequestRecord>>();
  const controllers = new Set<AbortController>();
  const records: RequestRecord[] = [];
  let submitted = 0;
  let nextProgress = startedAt + 15_000;

  for (const request of trace.requests) {
    const due = startedAt + request.at_s * scale;
    const wait = due - Date.now();
    if (wait > 1) await sleep(wait);
    const controller = new AbortController();
    controllers.add(controller);
    const timer = setTimeout(() => controller.abort(new Error('request timed out')), options.requestTimeoutMs);
    const run = policy
      .submit(request, controller.signal)
      .catch((error: unknown): RequestRecord => ({
        id: request.id,
        model: request.model,
        warmup: request.warmup,
        burst: request.burst !== null,
        submitted: due,
        finished: Date.now(),
        outcome: 'failed',
        failure: `bench error: ${(error as Error).message}`,
        oom: 0,
        tokens: 0,
      }))
      .then((record) => {
        clearTimeout(timer);
        controllers.delete(controller);
        records.push(record);
        pending.delete(run);
        return record;
      });
    pending.add(run);
    submitted++;
    if (Date.now() >= nextProgress) {
      nextProgress += 15_000;
      const done = records.length;
      const failed = records.filter((r) => r.outcome === 'failed').length;
      options.log(
        `  ${policy.name}: trace ${Math.round(request.at_s)}/${Math.round(trace.end_s)} s, ${submitted}/${trace.requests.length} sent, ${done} done (${failed} failed), ${pending.size} in flight`,
      );
    }
  }
  const lastSubmitAt = Date.now();
  const drained = Promise.all([...pending]);
  const deadline = sleep(options.drainTimeoutMs, 'deadline' as const, { ref: false });
  if ((await Promise.race([drained, deadline])) === 'deadline') {
    options.log(`  ${policy.name}: ${pending.size} requests still running ${options.drainTimeoutMs / 1000} s after the last submission; aborting them`);
    for (const controller of controllers) controller.abort(new Error('drain deadline'));
    await Promise.race([Promise.all([...pending]), sleep(10_000, undefined, { ref: false })]);
  }
  return { records: records.sort((a, b) => a.id - b.id), startedAt, warmupEndAt, lastSubmitAt, endedAt: Date.now() };
}
