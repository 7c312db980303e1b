/** Helpers shared by the backpressure and admission tests: keyed requests, tenants, start order. */
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Stack } from '../support/stack.js';

export const MODEL = 'qwen2.5:0.5b';

/**
 * A simulated node in real time whose answers run to `num_predict` (the simulator's
 * natural answer length would end them after 16-64 tokens): a job's length is then
 * num_predict / 220 seconds for qwen2.5:0.5b.
 */
export const REAL_TIME_SIM = {
  time_scale: 1,
  load_overhead_ms: 0,
  load_bytes_per_s: 1e12,
  response_tokens_min: 1_000_000,
  response_tokens_max: 1_000_000,
} as const;

/** One key per tenant (at least 16 characters, as the API demands) and an admin key. */
export const KEYS = {
  a: 'key-tenant-a-0123456789',
  b: 'key-tenant-b-0123456789',
  c: 'key-tenant-c-0123456789',
  d: 'key-tenant-d-0123456789',
  admin: 'key-admin-000123456789',
} as const;
export type Who = keyof typeof KEYS | 'nobody';

/** An API_KEYS_FILE: tenants a-d with the given per-tenant limits, plus an admin key given by its sha256. */
export function writeKeysFile(limits: Record<string, { in_flight?: number; model_in_flight?: number }> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-keys-'));
  const path = join(dir, 'keys.json');
  writeFileSync(
    path,
    JSON.stringify({
      keys: [
        { tenant: 'a', key: KEYS.a },
        { tenant: 'b', key: KEYS.b },
        { tenant: 'c', key: KEYS.c },
        { tenant: 'd', key: KEYS.d },
        // Admin key given only by its digest, as an operator would keep it on disk.
        { tenant: 'ops', sha256: createHash('sha256').update(KEYS.admin).digest('hex'), admin: true },
      ],
      tenants: limits,
    }),
  );
  return path;
}

export interface Answer {
  status: number;
  headers: Headers;
  json: any;
}

/** Any request to the stack's API (or another base URL) as a tenant; the body, when any, as JSON. */
export async function call(
  base: Stack | string,
  path: string,
  options: { method?: string; who?: Who; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const url = `${typeof base === 'string' ? base : base.apiUrl}${path}`;
  const headers: Record<string, string> = { ...options.headers };
  if (options.who && options.who !== 'nobody') headers.Authorization = `Bearer ${KEYS[options.who]}`;
  if (options.body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(url, {
    method: options.method ?? (options.body === undefined ? 'GET' : 'POST'),
    headers,
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
  });
  const text = await response.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: response.status, headers: response.headers, json };
}

export function post(base: Stack | string, body: unknown, who: Who = 'a', headers: Record<string, string> = {}): Promise<Answer> {
  return call(base, '/v1/jobs', { body, who, headers });
}

/** Submits a job that must be accepted. */
export async function accepted(base: Stack | string, body: unknown, who: Who = 'a'): Promise<any> {
  const answer = await post(base, body, who);
  expect(answer.status, JSON.stringify(answer.json)).toBe(202);
  return answer.json;
}

export async function status(stack: Stack, id: string, who: Who = 'a'): Promise<string> {
  const answer = await call(stack, `/v1/jobs/${id}`, { who });
  return answer.json?.status;
}

export async function waitFor(stack: Stack, id: string, want: string | string[], who: Who = 'a', timeout = 15_000): Promise<void> {
  const wanted = Array.isArray(want) ? want : [want];
  await expect.poll(() => status(stack, id, who), { timeout, interval: 50 }).toSatisfy((s: string) => wanted.includes(s));
}

/** When each job started on an agent (submission + queued time), from the finished records. */
export async function startTimes(stack: Stack, ids: Array<{ id: string; who: Who }>): Promise<Map<string, number>> {
  const result = new Map<string, number>();
  for (const { id, who } of ids) {
    const record = (await call(stack, `/v1/jobs/${id}`, { who })).json;
    expect(record.status, JSON.stringify(record)).toBe('completed');
    result.set(id, Date.parse(record.created_at) + record.timings.queued_ms);
  }
  return result;
}

/** Job ids in the order an agent started them. */
export async function startOrder(stack: Stack, ids: Array<{ id: string; who: Who }>): Promise<string[]> {
  const times = await startTimes(stack, ids);
  return [...times].sort((x, y) => x[1] - y[1]).map(([id]) => id);
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function simStats(stack: Stack, index = 0): Promise<any> {
  return fetch(`${stack.sims[index]!.url}/sim/stats`).then((r) => r.json());
}
