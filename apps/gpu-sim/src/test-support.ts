/** Helpers for the simulator's own tests: start it in-process, talk to it over real HTTP. */
import { afterEach } from 'vitest';
import type { GpuSimConfigInput } from './config.js';
import { createGpuSim, type GpuSim } from './gpu-sim.js';
import type { ModelSpecInput } from './model-spec.js';
import type { SimStats } from './sim-stats.js';

const running = new Set<GpuSim>();

afterEach(async () => {
  await Promise.all([...running].map((sim) => sim.close()));
  running.clear();
});

/** A simulator on a random port, 100× faster than real time unless told otherwise; closed after each test. */
export async function startSim(config: GpuSimConfigInput = {}): Promise<GpuSim> {
  const sim = await createGpuSim({ port: 0, time_scale: 0.01, log_level: 'silent', ...config });
  running.add(sim);
  return sim;
}

const GiB = 2 ** 30;

/** Small models with fixed footprints, for VRAM arithmetic that does not depend on estimates. */
export function tinyModel(name: string, vramGiB: number, extra: Partial<ModelSpecInput> = {}): ModelSpecInput {
  return { name, size_bytes: Math.round(vramGiB * 0.8 * GiB), vram_bytes: Math.round(vramGiB * GiB), ...extra };
}

export function post(sim: GpuSim, path: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(`${sim.url}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
}

export async function getJson<T = Record<string, unknown>>(sim: GpuSim, path: string): Promise<T> {
  const response = await fetch(`${sim.url}${path}`);
  if (!response.ok) throw new Error(`GET ${path}: ${response.status}`);
  return (await response.json()) as T;
}

export function stats(sim: GpuSim): Promise<SimStats> {
  return getJson<SimStats>(sim, '/sim/stats');
}

export type Line = Record<string, unknown>;

/** Reads a whole NDJSON body into objects, checking that every line is one JSON object. */
export async function readNdjson(response: Response): Promise<Line[]> {
  const text = await response.text();
  if (!text.endsWith('\n')) throw new Error(`NDJSON body does not end with a newline: ${JSON.stringify(text.slice(-80))}`);
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as Line);
}

/** Yields NDJSON lines as they arrive. */
export async function* ndjsonLines(response: Response): AsyncGenerator<Line> {
  if (!response.body) throw new Error('no body');
  const decoder = new TextDecoder();
  let buffer = '';
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    let newline = buffer.indexOf('\n');
    while (newline !== -1) {
      yield JSON.parse(buffer.slice(0, newline)) as Line;
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf('\n');
    }
  }
}

/** Polls until the check passes (returns truthy) or the time is up; robust on slow machines. */
export async function waitFor<T>(check: () => Promise<T> | T, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
      last = value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${String(last)})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export interface PsEntry {
  name: string;
  model: string;
  size: number;
  size_vram: number;
  digest: string;
  details: Record<string, unknown>;
  expires_at: string;
  context_length: number;
}

export async function ps(sim: GpuSim): Promise<PsEntry[]> {
  return (await getJson<{ models: PsEntry[] }>(sim, '/api/ps')).models;
}

export async function loadedNames(sim: GpuSim): Promise<string[]> {
  return (await ps(sim)).map((entry) => entry.name).sort();
}
