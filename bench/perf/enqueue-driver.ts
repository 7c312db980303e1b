import { Pool } from 'undici';

export interface EnqueueRun {
  acceptedPerS: number;
  /** Latency (ms) of each accepted submit. */
  latencies: number[];
  refused: number;
}

/**
 * `concurrency` clients POST /v1/jobs back to back for `durationMs`: how many the API
 * accepts per second and how long each took (bench:enqueue, bench:redis-modes).
 */
export async function driveEnqueue(apiUrl: string, options: { model: string; concurrency: number; durationMs: number }): Promise<EnqueueRun> {
  const { concurrency, durationMs } = options;
  const pool = new Pool(apiUrl, { connections: concurrency, pipelining: 1 });
  const body = JSON.stringify({ model: options.model, prompt: 'benchmark prompt', options: { num_predict: 4 } });
  const latencies: number[] = [];
  let accepted = 0;
  let refused = 0;
  const deadline = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        const response = await pool.request({ path: '/v1/jobs', method: 'POST', headers: { 'content-type': 'application/json' }, body });
        await response.body.dump();
        const elapsed = performance.now() - t0;
        if (response.statusCode === 202) {
          accepted++;
          latencies.push(elapsed);
        } else refused++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  await pool.close();
  return { acceptedPerS: accepted / seconds, latencies, refused };
}
