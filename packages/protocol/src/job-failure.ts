import { JobErrorCode } from './error-codes.js';

/**
 * BullMQ keeps only a string for a failed job (`failedReason`), so the agent writes
 * `<code>: <message>` and the API reads the stable code back.
 */
export function formatJobFailure(code: string, message: string): string {
  return `${code}: ${message}`;
}

export function parseJobFailure(reason: string | undefined): { code: string; message: string } {
  const match = /^([a-z_]+): ([\s\S]*)$/.exec(reason ?? '');
  return match ? { code: match[1]!, message: match[2]! } : { code: JobErrorCode.backendError, message: reason || 'failed' };
}
