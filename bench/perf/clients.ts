import type { Pool } from 'undici';
import { parseNdjson } from '@switchyard/backends';
import { isTerminalEvent } from '@switchyard/protocol';
import { consumeSse } from '../common/sse.js';

/** Submits a native job and returns its id. */
export async function submitJob(pool: Pool, payload: string): Promise<string> {
  const response = await pool.request({ path: '/v1/jobs', method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
  const json = (await response.body.json()) as { id?: string; error?: unknown };
  if (response.statusCode !== 202 || !json.id) throw new Error(`submit refused: ${response.statusCode} ${JSON.stringify(json)}`);
  return json.id;
}

/** Time from submission to the first token through Switchyard's native API (POST, then SSE). */
export interface SwitchyardTiming {
  ttftMs: number;
  tokens: number;
  totalMs: number;
  /** POST answered. */
  submitMs: number;
  /** SSE response headers received. */
  streamOpenMs: number;
  /** The agent's own view, from the `done` event (only when read to the end). */
  agent?: { queued_ms: number; ttft_ms: number };
}

export async function switchyardFirstToken(pool: Pool, payload: string, readAll = false): Promise<SwitchyardTiming> {
  const t0 = performance.now();
  const id = await submitJob(pool, payload);
  const submitMs = performance.now() - t0;
  const response = await pool.request({ path: `/v1/jobs/${id}/events`, method: 'GET', headers: { accept: 'text/event-stream' } });
  const streamOpenMs = performance.now() - t0;
  let ttftMs = Number.NaN;
  let tokens = 0;
  let agent: SwitchyardTiming['agent'];
  await consumeSse(response.body, (event) => {
    if (event.type === 'token') {
      tokens++;
      if (Number.isNaN(ttftMs)) ttftMs = performance.now() - t0;
      if (!readAll) return true;
    }
    if (event.type === 'done') agent = { queued_ms: event.timings.queued_ms, ttft_ms: event.timings.ttft_ms };
    return isTerminalEvent(event);
  });
  return { ttftMs, tokens, totalMs: performance.now() - t0, submitMs, streamOpenMs, ...(agent && { agent }) };
}

/** Time to the first token straight from an Ollama-compatible backend (`/api/generate`, NDJSON). */
export async function directFirstToken(pool: Pool, payload: string): Promise<{ ttftMs: number }> {
  const t0 = performance.now();
  const response = await pool.request({ path: '/api/generate', method: 'POST', headers: { 'content-type': 'application/json' }, body: payload });
  let ttftMs = Number.NaN;
  for await (const line of parseNdjson(response.body as AsyncIterable<Uint8Array>)) {
    if (Number.isNaN(ttftMs) && (line as { response?: string }).response) ttftMs = performance.now() - t0;
  }
  return { ttftMs };
}
