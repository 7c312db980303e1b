import type { RequestRecord } from './records.js';
import type { TraceRequest } from './trace.js';

export const POLICY_NAMES = ['round_robin', 'seed_gateway', 'switchyard'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

/** One way of putting requests on the fleet. */
export interface Policy {
  readonly name: PolicyName;
  /** Serves one trace request; never rejects — failures are records too. */
  submit(request: TraceRequest, signal: AbortSignal): Promise<RequestRecord>;
  /** Facts for the report: what was configured, what it decided. */
  describe(): Record<string, unknown>;
  close(): Promise<void>;
}

/** keep_alive as a Go duration of wall-clock ms: gpu-sim does not scale keep_alive by time_scale. */
export function scaledKeepAlive(traceSeconds: number, timeScale: number): string {
  return `${Math.max(1, Math.round(traceSeconds * 1_000 * timeScale))}ms`;
}
