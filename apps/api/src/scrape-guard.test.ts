import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { guardScrapeReads } from './scrape-guard.js';

/** A gauge filled the way the Redis-read ones are (reset, wait for a read, fill), from reads the test answers. */
function registryWithRead() {
  const registry = new Registry();
  const reads: Array<(agents: number) => void> = [];
  new Gauge({
    name: 'agents',
    help: 'agents',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      this.reset();
      const agents = await new Promise<number>((resolve) => reads.push(resolve));
      for (let i = 0; i < agents; i++) this.inc({ state: 'ready' });
    },
  });
  new Counter({ name: 'requests_total', help: 'requests', registers: [registry] }).inc(3);
  return { registry, reads };
}

describe('guardScrapeReads', () => {
  it('answers a scrape whose read hangs without its series, and the late answer never writes into a later scrape', async () => {
    const { registry, reads } = registryWithRead();
    let redisUp = false;
    // The read timeout is the test's to end: each read's time is up when the test says so.
    const timeouts: Array<() => void> = [];
    guardScrapeReads(
      registry,
      async () => (redisUp ? 'PONG' : new Promise(() => undefined)),
      () => new Promise<void>((resolve) => timeouts.push(resolve)),
    );

    // The read never answers, and its time runs out: the scrape answers, without the series.
    const scrape = registry.metrics();
    await expect.poll(() => timeouts.length).toBe(2); // the gauge's read and the PING
    for (const timeUp of timeouts.splice(0)) timeUp();
    const hung = await scrape;
    expect(hung).toMatch(/^requests_total 3$/m);
    expect(hung).not.toMatch(/^agents\{/m);
    expect(hung).toMatch(/^switchyard_redis_up 0$/m);

    // Redis is back: the next scrape's read answers 2 while the hung one answers 5 after it.
    redisUp = true;
    const next = registry.metrics();
    await expect.poll(() => reads.length).toBe(2);
    reads[1]!(2);
    reads[0]!(5);
    const text = await next;
    expect(text).toMatch(/^agents\{state="ready"\} 2$/m);
    expect(text).toMatch(/^switchyard_redis_up 1$/m);
    expect(text).toMatch(/^switchyard_metrics_read_failures_total\{metric="agents"\} 1$/m);
    // And the scrape after it: still 2, not 2 + 5.
    const after = registry.metrics();
    await expect.poll(() => reads.length).toBe(3);
    reads[2]!(2);
    expect(await after).toMatch(/^agents\{state="ready"\} 2$/m);
  });

  it('gives two overlapping scrapes each a whole set, not the sum of both', async () => {
    const { registry, reads } = registryWithRead();
    guardScrapeReads(
      registry,
      async () => 'PONG',
      () => new Promise<void>(() => undefined),
    );
    const first = registry.metrics();
    const second = registry.metrics();
    await expect.poll(() => reads.length).toBe(2);
    reads[0]!(3);
    reads[1]!(3);
    expect(await first).toMatch(/^agents\{state="ready"\} 3$/m);
    expect(await second).toMatch(/^agents\{state="ready"\} 3$/m);
  });
});
