import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * A scrape must answer when Redis does not: that is when an operator needs the API's own
 * figures (requests, refusals, open streams). prom-client collects every metric of a registry
 * together and fails the whole scrape when one collect rejects, and a read on a connection
 * that waits for Redis to come back never settles. So each metric filled from Redis at scrape
 * time gets at most `readTimeoutMs`; one that fails or runs out has no series in that scrape,
 * its name is counted in `switchyard_metrics_read_failures_total`, and `switchyard_redis_up`
 * says why (the `up`/`redis_up` convention of Prometheus exporters).
 */
export function guardScrapeReads(registry: Registry, ping: () => Promise<unknown>, readTimeoutMs: number): void {
  const failures = new Counter({
    name: 'switchyard_metrics_read_failures_total',
    help: 'Scrape-time reads from Redis that failed or went unanswered within the read timeout, by the metric left without series in that scrape',
    labelNames: ['metric'],
    registers: [registry],
  });
  for (const metric of registry.getMetricsAsArray()) {
    const collect = (metric as { collect?: () => unknown }).collect;
    if (collect === undefined) continue;
    const name = (metric as { name: string }).name;
    (metric as { collect: () => Promise<void> }).collect = async function (this: { reset(): void }) {
      try {
        await withinMs(Promise.resolve(collect.call(this)), readTimeoutMs);
      } catch {
        this.reset();
        failures.inc({ metric: name });
      }
    };
  }
  new Gauge({
    name: 'switchyard_redis_up',
    help: 'Whether Redis answered a PING at this scrape (1) or not (0): when 0, the metrics read from Redis have no series',
    registers: [registry],
    async collect() {
      this.set(
        (await withinMs(ping(), readTimeoutMs).then(
          () => true,
          () => false,
        ))
          ? 1
          : 0,
      );
    },
  });
}

/** `promise`, or a rejection once `ms` pass without an answer. */
export function withinMs<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
