import { expect } from 'vitest';
import type { Stack } from './stack.js';

export interface Submitted {
  status: number;
  headers: Headers;
  json: any;
}

/** POSTs a job to the stack's API and returns status, headers and body, whatever they are. */
export async function postJob(stack: Stack, body: unknown): Promise<Submitted> {
  const response = await fetch(`${stack.apiUrl}/v1/jobs`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, json: await response.json() };
}

/** POSTs a job that must be accepted; returns the 202 body. */
export async function submitJob(stack: Stack, body: unknown): Promise<any> {
  const { status, json } = await postJob(stack, body);
  expect(status, JSON.stringify(json)).toBe(202);
  return json;
}

/** GET /v1/jobs/:id, which must exist. */
export async function getJob(stack: Stack, id: string): Promise<any> {
  const response = await fetch(`${stack.apiUrl}/v1/jobs/${id}`);
  expect(response.status).toBe(200);
  return response.json();
}

export async function jobStatus(stack: Stack, id: string): Promise<string> {
  return (await getJob(stack, id)).status;
}

/**
 * Submits to the API at `apiUrl` until it is accepted (202), for a fleet that has just started:
 * until the API has read an agent's first heartbeat the model is not served. Returns the job id.
 */
export async function submitOnceServed(apiUrl: string, body: unknown, timeout = 10_000): Promise<string> {
  // A plain loop, not the global `expect.poll`: it also serves concurrent tests, whose
  // assertions must go through their own test context's `expect`.
  const deadline = Date.now() + timeout;
  let last = 0;
  while (Date.now() < deadline) {
    const response = await fetch(`${apiUrl}/v1/jobs`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    last = response.status;
    if (response.status === 202) return ((await response.json()) as { id: string }).id;
    await response.body?.cancel();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the API did not accept the job within ${timeout} ms (last answer ${last})`);
}

/** Any request to the stack's API, whatever it answers: status and the JSON body (undefined when empty). */
export async function apiCall(apiUrl: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${apiUrl}${path}`, {
    method,
    ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}

/** Polls `check` every 50 ms until it returns something other than undefined, and returns that; fails naming `what`. */
export async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
