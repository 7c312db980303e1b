/**
 * `pnpm bench:connections`: idle-ish SSE streams held by one API process (heartbeats and
 * a token per second each): RSS per stream and event-loop lag.
 * Target: 10k streams under 1 GB RSS, loop lag p99 ≤ 20 ms.
 */
import { Redis } from 'ioredis';
import { driveRelay } from './relay-driver.js';
import { fmt, median, printTable, rssBytes, runBenchmark, startApi, startRedis, writeResult } from './harness.js';
import { summarize } from '../common/stats.js';
import { createSyntheticJobs } from './synthetic-jobs.js';

const STREAMS = Number(process.env.BENCH_STREAMS ?? 10_000);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 15_000);

async function loopLagP99Ms(apiUrl: string): Promise<number> {
  const text = await fetch(`${apiUrl}/metrics`).then((r) => r.text());
  const match = /^switchyard_api_nodejs_eventloop_lag_p99_seconds (\S+)/m.exec(text);
  return match ? Number(match[1]) * 1000 : Number.NaN;
}

runBenchmark(async () => {
  const redis = await startRedis();
  const prefix = `bench-connections-${Date.now()}`;
  const control = new Redis(redis.url);
  const ids = await createSyntheticJobs(control, prefix, STREAMS);
  // Heartbeats every 5 s instead of 15 s, so a short run sees several rounds of them.
  const api = await startApi(redis.url, prefix, { SSE_HEARTBEAT_MS: '5000' });
  await new Promise((resolve) => setTimeout(resolve, 500));
  const baseline = rssBytes(api.child.pid!);
  let withStreams = Number.NaN;
  const lags: number[] = [];
  let sampler: NodeJS.Timeout | undefined;
  const stats = await driveRelay({
    apiUrl: api.url,
    redisUrl: redis.url,
    prefix,
    jobIds: ids,
    eventsPerS: 1,
    tokensPerEvent: 1,
    durationMs: DURATION_MS,
    producers: 1,
    warmupMs: 2_000,
    onStreamsOpen: async () => {
      withStreams = rssBytes(api.child.pid!);
      // prom-client resets the loop-delay histogram at each scrape: one scrape now drops the
      // connection storm, then each sample covers the 2 s of steady state before it.
      await loopLagP99Ms(api.url);
      sampler = setInterval(
        () =>
          void loopLagP99Ms(api.url)
            .then((lag) => lags.push(lag))
            .catch(() => undefined),
        2_000,
      );
    },
  });
  const peak = rssBytes(api.child.pid!);
  clearInterval(sampler);
  lags.shift(); // the first window includes the producers' start-up
  control.disconnect();
  await redis.stop();
  // The median window's p99: one window with a GC pause or a neighbour's burst is reported as max.
  const lag = median(lags.filter(Number.isFinite));
  const lagMax = Math.max(...lags.filter(Number.isFinite));
  const rssPerStream = (Math.max(withStreams, peak) - baseline) / STREAMS;
  const delay = summarize(stats.delaysMs);
  const result = {
    streams: STREAMS,
    rss_bytes_per_stream: Math.round(rssPerStream),
    rss_total_bytes: Math.max(withStreams, peak),
    rss_baseline_bytes: baseline,
    loop_lag_p99_ms: Number(fmt(lag)),
    loop_lag_p99_worst_window_ms: Number(fmt(lagMax)),
    token_delay_p99_ms: Number(fmt(delay.p99)),
    tokens_delivered: stats.tokens,
    target: { streams: 10_000, rss_total_bytes: 1e9, loop_lag_p99_ms: 20 },
  };
  printTable(`Connection scale: ${STREAMS} SSE streams, one token per second each`, [
    {
      rss_total_mb: fmt(result.rss_total_bytes / 2 ** 20, 0),
      rss_per_stream_kb: fmt(rssPerStream / 1024, 1),
      loop_lag_p99_ms: fmt(lag),
      worst_window_ms: fmt(lagMax),
      token_delay_p99_ms: fmt(delay.p99),
      target: '10k under 1 GB, lag p99 ≤20 ms',
    },
  ]);
  process.stdout.write(`wrote ${writeResult('connections', result)}\n`);
});
