/** What every route needs: the config, the simulated GPU, the counters and the catalog. */
import type { Logger } from 'pino';
import type { GpuSimConfig } from './config.js';
import type { Holds } from './holds.js';
import type { ModelSpec } from './model-spec.js';
import { canonicalModelName } from '@switchyard/protocol';
import type { Scheduler } from './scheduler.js';
import type { SimCounters } from './sim-counters.js';

export interface SimContext {
  config: GpuSimConfig;
  scheduler: Scheduler;
  counters: SimCounters;
  /** What is on the simulated disk, by name: `/api/pull` adds, `/api/delete` removes. */
  catalog: Map<string, ModelSpec>;
  /** What `/api/pull` can download, by name (see pulls.ts). */
  registry: ReadonlyMap<string, ModelSpec>;
  logger: Logger;
  /** Aborted when the server shuts down: running generations end with an error line. */
  shutdown: AbortSignal;
  /** Tests' holds on generations (none unless a test placed one). */
  holds: Holds;
}

/** Finds a model by name, adding `:latest` when the tag is missing, as Ollama does. */
export function findModel(catalog: ReadonlyMap<string, ModelSpec>, name: string): ModelSpec | undefined {
  return catalog.get(name) ?? catalog.get(canonicalModelName(name));
}

/** Bytes the models on the simulated disk take: a build copied under two names (`/api/copy`) is stored once. */
export function diskUsedBytes(catalog: ReadonlyMap<string, ModelSpec>): number {
  const sizes = new Map<string, number>();
  for (const model of catalog.values()) sizes.set(model.digest, model.size_bytes);
  let used = 0;
  for (const size of sizes.values()) used += size;
  return used;
}
