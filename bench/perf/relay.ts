/**
 * `pnpm bench:relay`: tokens per second one API process relays to 1,000 concurrent SSE
 * streams, and the delay it adds between a token's write to Redis and its arrival at the
 * client. Token events come from producer processes writing through the agents' EventLog.
 * Target: ≥ 100k tokens/s, added inter-token p99 ≤ 10 ms.
 */
import { Redis } from 'ioredis';
import { driveRelay } from './relay-driver.js';
import { fmt, printTable, runBenchmark, startApi, startRedis, writeResult } from './harness.js';
import { summarize } from '../common/stats.js';
import { createSyntheticJobs } from './synthetic-jobs.js';

const STREAMS = Number(process.env.BENCH_STREAMS ?? 1000);
// Offered load: 1,000 streams × 100 tokens/s = the 100k tokens/s of the target.
// BENCH_TOKENS_PER_S=150 offers more than one API process relays, to find its ceiling.
const TOKENS_PER_S_PER_STREAM = Number(process.env.BENCH_TOKENS_PER_S ?? 100);
// Tokens coalesced into events of 4 (the agent batches tokens that arrive within a few ms).
const TOKENS_PER_EVENT = Number(process.env.BENCH_TOKENS_PER_EVENT ?? 4);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 8_000);

runBenchmark(async () => {
  const redis = await startRedis();
  const prefix = `bench-relay-${Date.now()}`;
  const control = new Redis(redis.url);
  const ids = await createSyntheticJobs(control, prefix, STREAMS);
  const api = await startApi(redis.url, prefix);
  const stats = await driveRelay({
    apiUrl: api.url,
    redisUrl: redis.url,
    prefix,
    jobIds: ids,
    eventsPerS: TOKENS_PER_S_PER_STREAM / TOKENS_PER_EVENT,
    tokensPerEvent: TOKENS_PER_EVENT,
    durationMs: DURATION_MS,
    producers: 2,
  });
  control.disconnect();
  await redis.stop();
  const delay = summarize(stats.delaysMs);
  const result = {
    streams: STREAMS,
    tokens_per_s: Math.round(stats.tokens / stats.seconds),
    events_per_s: Math.round(stats.events / stats.seconds),
    tokens_per_event: TOKENS_PER_EVENT,
    added_intertoken_p50_ms: Number(fmt(delay.p50)),
    added_intertoken_p99_ms: Number(fmt(delay.p99)),
    events_sent: stats.sent,
    offered_tokens_per_s: STREAMS * TOKENS_PER_S_PER_STREAM,
    target: { tokens_per_s: 100_000, added_intertoken_p99_ms: 10 },
  };
  printTable(`Token relay: ${STREAMS} SSE streams on one API process`, [
    {
      tokens_per_s: result.tokens_per_s,
      events_per_s: result.events_per_s,
      delay_p50_ms: fmt(delay.p50),
      delay_p99_ms: fmt(delay.p99),
      delay_max_ms: fmt(delay.max),
      target: '≥100k tok/s, p99 ≤10 ms',
    },
  ]);
  process.stdout.write(`wrote ${writeResult('relay', result)}\n`);
});
