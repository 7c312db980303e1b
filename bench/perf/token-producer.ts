/**
 * Child process of the relay and connection benchmarks: writes token events for a set of
 * jobs through the same transition an agent uses (`JobLifecycle.stream`), at a fixed rate, each token stamped with
 * its send time (ms since the epoch, sub-millisecond) so the reader can measure delivery
 * delay. Arguments arrive as the first IPC message (10k job ids do not fit in argv).
 */
import { Cluster, Redis } from 'ioredis';
import { redisKeys } from '@switchyard/protocol';
import { AdmissionLedger, JobLifecycle } from '@switchyard/redis';
import { SYNTHETIC_ATTEMPT } from './synthetic-jobs.js';

interface ProducerArgs {
  redisUrl: string;
  /** A Redis Cluster's nodes instead of `redisUrl` (bench:redis-modes). */
  clusterNodes?: Array<{ host: string; port: number }>;
  prefix: string;
  jobIds: string[];
  /** Events per second per job. */
  eventsPerS: number;
  /** Tokens carried by each event (what the agent's coalescing would batch). */
  tokensPerEvent: number;
  durationMs: number;
}

const args = await new Promise<ProducerArgs>((resolve) => process.once('message', (message) => resolve(message as ProducerArgs)));
// Auto-pipelining batches the events of one tick per connection: per node under Cluster.
const redis = args.clusterNodes ? new Cluster(args.clusterNodes, { enableAutoPipelining: true }) : new Redis(args.redisUrl, { enableAutoPipelining: true });
const keys = redisKeys(args.prefix);
const lifecycle = new JobLifecycle(redis, keys, new AdmissionLedger(redis, keys));
const now = () => performance.timeOrigin + performance.now();
const intervalMs = 1000 / args.eventsPerS;
const started = now();
let sent = 0;

// Each tick sends one event to every job whose turn it is; jobs are spread over the interval.
const offsets = args.jobIds.map((_, i) => (i / args.jobIds.length) * intervalMs);
const nextAt = offsets.map((offset) => started + offset);
const words = Array.from({ length: args.tokensPerEvent - 1 }, () => ' w').join('');

async function loop(): Promise<void> {
  while (now() - started < args.durationMs) {
    const t = now();
    const batch: Promise<unknown>[] = [];
    for (let i = 0; i < args.jobIds.length; i++) {
      if (nextAt[i]! > t) continue;
      nextAt[i]! += intervalMs;
      batch.push(lifecycle.stream(args.jobIds[i]!, SYNTHETIC_ATTEMPT, { type: 'token', text: `${now().toFixed(3)}${words}` }));
      sent++;
    }
    if (batch.length > 0) await Promise.all(batch);
    else await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

await loop();
process.send?.({ sent });
await redis.quit();
