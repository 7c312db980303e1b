import { describe, expect, it } from 'vitest';
import { API_ERROR_STATUS, ApiErrorBody, ApiErrorCode, CompatErrorCode, ErrorCode, JobErrorCode, ReceivedApiErrorBody, formatJobFailure, parseJobFailure } from './index.js';

describe('error codes', () => {
  it('gives every API code a 4xx or 5xx status, and nothing else one', () => {
    expect(Object.keys(API_ERROR_STATUS).sort()).toEqual(Object.values(ApiErrorCode).sort());
    for (const status of Object.values(API_ERROR_STATUS)) expect(status >= 400 && status < 600).toBe(true);
  });

  it('keeps one string per name, and the same string for a name two families share', () => {
    for (const family of [ApiErrorCode, JobErrorCode, CompatErrorCode]) {
      const values = Object.values(family);
      expect(new Set(values).size).toBe(values.length);
    }
    for (const [name, code] of Object.entries(JobErrorCode)) {
      if (name in ApiErrorCode) expect(ApiErrorCode[name as keyof typeof ApiErrorCode]).toBe(code);
    }
    expect(Object.values(ErrorCode).sort()).toEqual([...new Set([...Object.values(ApiErrorCode), ...Object.values(JobErrorCode)])].sort());
  });

  it('round-trips every job code through a failedReason', () => {
    for (const code of Object.values(JobErrorCode)) expect(parseJobFailure(formatJobFailure(code, 'why: it broke'))).toEqual({ code, message: 'why: it broke' });
  });

  it('types the body the API writes, while a client reads codes it does not know', () => {
    const future = { error: { code: 'quota_exhausted', message: 'later' } };
    expect(ApiErrorBody.safeParse({ error: { code: ErrorCode.queueFull, message: 'full', retry_after_s: 3 } }).success).toBe(true);
    expect(ApiErrorBody.safeParse(future).success).toBe(false);
    expect(ReceivedApiErrorBody.parse(future).error.code).toBe('quota_exhausted');
  });
});
