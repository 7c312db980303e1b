import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * A scrape must answer when Redis does not: that is when an operator needs the API's own
 * figures (requests, refusals, open streams). prom-client collects every metric of a registry
 * together and fails the whole scrape when one collect rejects, and a read on a connection
 * that waits for Redis to come back never settles. So each metric filled from Redis at scrape
 * time gets at most `readTimeout`; one that fails or runs out has no series in that scrape,
 * its name is counted in `switchyard_metrics_read_failures_total`, and `switchyard_redis_up`
 * says why (the `up`/`redis_up` convention of Prometheus exporters).
 */
export function guardScrapeReads(registry: Registry, ping: () => Promise<unknown>, readTimeout: ReadTimeout): void {
  const failures = new Counter({
    name: 'switchyard_metrics_read_failures_total',
    help: 'Scrape-time reads from Redis that failed or went unanswered within the read timeout, by the metric left without series in that scrape',
    labelNames: ['metric'],
    registers: [registry],
  });
  for (const metric of registry.getMetricsAsArray() as unknown as Array<WritableMetric>) {
    const collect = metric.collect;
    if (collect === undefined) continue;
    metric.collect = async () => {
      // The collect writes into a buffer, applied at once when it answers in time: a read that
      // hangs and answers after its scrape gave up can never write into a later one, and two
      // overlapping scrapes each apply a whole set (a collect resets, waits, then fills).
      const writes: Array<[WriteMethod, unknown[]]> = [];
      const buffered = new Proxy(metric, {
        get: (target, key) => (WRITE_METHODS.has(key as WriteMethod) ? (...args: unknown[]) => void writes.push([key as WriteMethod, args]) : Reflect.get(target, key)),
      });
      try {
        const pending = collect.call(buffered);
        if (pending instanceof Promise) await within(pending, readTimeout);
      } catch {
        metric.reset();
        failures.inc({ metric: metric.name });
        return;
      }
      for (const [method, args] of writes) (metric[method] as (...args: unknown[]) => void)(...args);
    };
  }
  new Gauge({
    name: 'switchyard_redis_up',
    help: 'Whether Redis answered a PING at this scrape (1) or not (0): when 0, the metrics read from Redis have no series',
    registers: [registry],
    async collect() {
      this.set(
        (await within(ping(), readTimeout).then(
          () => true,
          () => false,
        ))
          ? 1
          : 0,
      );
    },
  });
}

/** Milliseconds, or (in tests) a promise factory whose promise settles when a read's time is up. */
export type ReadTimeout = number | (() => Promise<void>);

function within<T>(promise: Promise<T>, timeout: ReadTimeout): Promise<T> {
  if (typeof timeout === 'number') return withinMs(promise, timeout);
  return Promise.race([promise, timeout().then(() => Promise.reject(new Error('no answer before the read timeout')))]);
}

type WriteMethod = 'reset' | 'set' | 'inc' | 'dec' | 'observe';
const WRITE_METHODS = new Set<WriteMethod>(['reset', 'set', 'inc', 'dec', 'observe']);
type WritableMetric = { name: string; collect?: () => unknown; reset(): void } & Partial<Record<WriteMethod, unknown>>;

/** `promise`, or a rejection once `ms` pass without an answer. */
export function withinMs<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
