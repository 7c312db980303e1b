import { describe, expect, it } from 'vitest';
import { ErrorCode } from './index.js';
import { errorFromResponse } from './errors.js';

function answer(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body, { status, headers });
}

describe('errorFromResponse', () => {
  it('reads a native error body', async () => {
    const error = await errorFromResponse(answer(429, JSON.stringify({ error: { code: 'queue_full', message: 'full', retry_after_s: 7 } })));
    expect(error).toMatchObject({ code: ErrorCode.queueFull, message: 'full', status: 429, retryAfterS: 7, isRefusal: true });
  });

  it('keeps a code this SDK does not know, with its message', async () => {
    const error = await errorFromResponse(answer(402, JSON.stringify({ error: { code: 'quota_exhausted', message: 'buy more' } })));
    expect(error).toMatchObject({ code: 'quota_exhausted', message: 'buy more', status: 402 });
  });

  it('falls back to http_<status> and the text for a body that is not a native error', async () => {
    const error = await errorFromResponse(answer(502, '<html>bad gateway</html>'));
    expect(error).toMatchObject({ code: 'http_502', message: '<html>bad gateway</html>', status: 502 });
  });
});
