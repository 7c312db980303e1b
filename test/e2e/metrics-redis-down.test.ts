/**
 * `/metrics` answers while Redis does not: a scrape during an outage is when an operator needs
 * the API's own figures. The stack runs on a redis-server of its own, and the fault comes at
 * a known point: the server is paused (SIGSTOP: connections stay open and nothing answers, so
 * a read waits for good) and then killed (connections refused). In both, a scrape is `200`
 * with the API's own series, `switchyard_redis_up 0`, no series of the metrics read from
 * Redis, and those metrics counted in `switchyard_metrics_read_failures_total`. Once Redis is
 * back, so are they.
 */
import { describe, expect, it } from 'vitest';
import { findOnPath, spawnRedisServer } from '@switchyard/testing';
import { startStack } from '../support/stack.js';

const ADMIN = 'admin-key-metrics-down-0123456789';
const MODEL = 'qwen2.5:0.5b';
/** `switchyard_metrics_read_failures_total{metric="switchyard_queue_depth"}` in a scrape's text, 0 before any failure. */
const readFailures = (body: string) => Number(/^switchyard_metrics_read_failures_total\{metric="switchyard_queue_depth"\} (\d+)$/m.exec(body)?.[1] ?? 0);

describe.skipIf(!findOnPath('redis-server'))('/metrics while Redis is down', () => {
  it('answers 200 with the API’s own series and redis_up 0, paused or gone, and has the Redis-read series again once it is back', { timeout: 60_000 }, async () => {
    let server = await spawnRedisServer();
    const port = Number(new URL(server.url).port);
    const stack = await startStack({ redisUrl: server.url, api: { adminApiKeys: ADMIN, apiKeys: `acme:${ADMIN}-tenant` } });
    const scrape = async () => {
      const response = await fetch(`${stack.apiUrl}/metrics`, { headers: { Authorization: `Bearer ${ADMIN}` }, signal: AbortSignal.timeout(10_000) });
      return { status: response.status, body: await response.text() };
    };
    const fromRedis = /^switchyard_fleet_agents\{state="ready"\} 1$/m;
    try {
      // Up: every series, an agent on the fleet gauge.
      await expect.poll(async () => (await scrape()).body, { timeout: 10_000 }).toMatch(fromRedis);
      let last = (await scrape()).body;
      expect(last).toMatch(/^switchyard_redis_up 1$/m);
      const submitted = await fetch(`${stack.apiUrl}/v1/jobs`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${ADMIN}-tenant`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt: 'counted', detach: true }),
      });
      expect(submitted.status).toBe(202);

      for (const fault of ['paused', 'killed'] as const) {
        if (fault === 'paused') server.child.kill('SIGSTOP');
        else await server.stop();
        try {
          const failedBefore = readFailures(last);
          const first = await scrape();
          expect(first.status, fault).toBe(200);
          expect(first.body).toMatch(/^switchyard_redis_up 0$/m);
          // A fleet read cached from just before (FLEET_CACHE_MS, 50 ms here) may still show for a moment.
          await expect.poll(async () => (await scrape()).body, { timeout: 10_000 }).not.toMatch(/^switchyard_fleet_agents\{/m);
          const during = await scrape();
          expect(during.status, fault).toBe(200);
          expect(during.body).toMatch(/^switchyard_redis_up 0$/m);
          expect(during.body).toMatch(/^switchyard_jobs_submitted_total\{model="qwen2.5:0.5b",priority="interactive"\} 1$/m);
          expect(during.body).toMatch(/^switchyard_api_process_cpu_seconds_total /m);
          expect(during.body).not.toMatch(/^switchyard_fleet_agents\{/m);
          expect(during.body).not.toMatch(/^switchyard_queue_depth\{/m);
          // Counted as the reads fail, so a scrape shows the ones of the scrapes before it.
          expect(readFailures(during.body)).toBeGreaterThan(failedBefore);
        } finally {
          if (fault === 'paused') server.child.kill('SIGCONT');
          else server = await spawnRedisServer(undefined, { port });
        }
        // Back: the agent beats again (into the restarted, empty server too) and the series return.
        await expect.poll(async () => (await scrape()).body, { timeout: 15_000 }).toMatch(fromRedis);
        last = (await scrape()).body;
        expect(last).toMatch(/^switchyard_redis_up 1$/m);
      }
    } finally {
      await stack.close().finally(() => server.stop());
    }
  });
});
