/** Small statistics and the shapes the load generator reports. */

import { round, summarize } from '../common/stats.js';

export interface Attempt {
  client: number;
  /** ms since the run started, when the POST was sent. */
  at: number;
  latencyMs: number;
  status: number;
  code?: string;
  /** Retry-After header (whole seconds) and Retry-After-Ms, on refusals. */
  retryAfterS?: number;
  retryAfterMs?: number;
  /** Whether this attempt was a retry made after the previous refusal's Retry-After. */
  retry: boolean;
}

export interface AcceptedJob {
  client: number;
  id: string;
  acceptedAt: number;
  etaS?: number;
  position: number;
  startedAt?: number;
  endedAt?: number;
  outcome: 'completed' | 'error' | 'lost';
  errorCode?: string;
}

export interface LoadReport {
  startedAt: string;
  offeredPerS: number;
  durationS: number;
  clients: number;
  attempts: Attempt[];
  jobs: AcceptedJob[];
  gaveUp: number;
  hardStopped: boolean;
  wallS: number;
}

/** `summarize` rounded for the report, without the mean. */
export function summary(values: number[], digits = 1): { n: number; p50: number; p90: number; p99: number; max: number } {
  const { n, p50, p90, p99, max } = summarize(values);
  return { n, p50: round(p50, digits), p90: round(p90, digits), p99: round(p99, digits), max: round(max, digits) };
}
