/**
 * `createGpuSim`: a running simulated GPU node on a real port, for main.ts, tests and other
 * packages (the demo, whole-stack tests, fleet simulations) alike.
 */
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { parseConfig, type GpuSimConfig, type GpuSimConfigInput } from './config.js';
import { Holds, type Hold, type HoldOptions } from './holds.js';
import type { ModelSpec } from './model-spec.js';
import { Scheduler } from './scheduler.js';
import { buildServer } from './server.js';
import { SimCounters } from './sim-counters.js';
import type { SimContext } from './sim-context.js';
import { simStats, type SimStats } from './sim-stats.js';

export interface GpuSimOptions {
  /** Root logger; the simulator logs through children of it. Silent when absent. */
  logger?: Logger;
}

export interface GpuSim {
  /** Base URL clients use, e.g. `http://127.0.0.1:11434`. */
  readonly url: string;
  readonly port: number;
  readonly config: GpuSimConfig;
  stats(): SimStats;
  /**
   * Keeps the generations it catches open until the test releases them (holds.ts): a job the
   * test acts on cannot end first, whatever the machine's load. Closing the sim ends them too.
   */
  hold(options?: HoldOptions): Hold;
  /** Ends running generations (with an error line), refuses queued requests and stops listening. */
  close(): Promise<void>;
}

/** How long close() lets streams say goodbye before cutting the remaining connections. */
const CLOSE_GRACE_MS = 2_000;

function urlFor(host: string, port: number): string {
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return `http://${reachable.includes(':') ? `[${reachable}]` : reachable}:${port}`;
}

/** Starts a simulator; the config is validated (ConfigError names the bad field). */
export async function createGpuSim(config: GpuSimConfigInput = {}, options: GpuSimOptions = {}): Promise<GpuSim> {
  const parsed = parseConfig(config);
  const logger = (options.logger ?? pino({ level: 'silent' })).child({ component: 'gpu-sim' });
  const counters = new SimCounters();
  const shutdown = new AbortController();
  const holds = new Holds();
  const scheduler = new Scheduler({
    vramBytes: parsed.vram_bytes,
    vramOverheadBytes: parsed.vram_overhead_bytes,
    numParallel: parsed.num_parallel,
    maxQueue: parsed.max_queue,
    maxLoadedModels: parsed.max_loaded_models,
    timeScale: parsed.time_scale,
    loadBytesPerS: parsed.load_bytes_per_s,
    loadOverheadMs: parsed.load_overhead_ms,
    counters,
    logger: logger.child({ component: 'scheduler' }),
  });
  const ctx: SimContext = {
    config: parsed,
    scheduler,
    counters,
    catalog: new Map<string, ModelSpec>(parsed.models.map((model) => [model.name, model])),
    // The configured models are pullable too (after a delete, say); a registry entry of the same name wins.
    registry: new Map<string, ModelSpec>([...parsed.models, ...parsed.registry].map((model) => [model.name, model])),
    logger,
    shutdown: shutdown.signal,
    holds,
  };
  const app = buildServer(ctx);
  await app.listen({ host: parsed.host, port: parsed.port });
  const port = (app.server.address() as AddressInfo).port;
  const url = urlFor(parsed.host, port);

  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    config: parsed,
    stats: () => simStats(ctx),
    hold: (options) => holds.place(options),
    close: () => {
      closing ??= (async () => {
        shutdown.abort();
        scheduler.close();
        const closed = app.close();
        const timedOut = await Promise.race([closed.then(() => false), sleep(CLOSE_GRACE_MS, true, { ref: false })]);
        if (timedOut) {
          app.server.closeAllConnections();
          await closed;
        }
      })();
      return closing;
    },
  };
}
