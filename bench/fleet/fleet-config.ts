/**
 * The simulated fleet: which GPU nodes, and how every one of them runs Ollama (as gpu-sim).
 * All three policies run on exactly this hardware and Ollama configuration; only what sits
 * in front of the nodes (and the keep_alive it sends) differs.
 */
import type { GpuSimConfigInput } from '@switchyard/gpu-sim';
import { simCatalog, type CatalogModel } from './catalog.js';

export interface NodeSpec {
  name: string;
  gpu_name: string;
  vram_bytes: number;
}

/** Mixed VRAM: two 24 GB cards, one 48 GB, one 80 GB — 176 GB in all. */
export const DEFAULT_NODES: readonly NodeSpec[] = [
  { name: 'node-a-24gb', gpu_name: 'Simulated RTX 4090 24 GB', vram_bytes: 24e9 },
  { name: 'node-b-24gb', gpu_name: 'Simulated RTX 4090 24 GB', vram_bytes: 24e9 },
  { name: 'node-c-48gb', gpu_name: 'Simulated L40S 48 GB', vram_bytes: 48e9 },
  { name: 'node-d-80gb', gpu_name: 'Simulated A100 80 GB', vram_bytes: 80e9 },
];

/**
 * The default fleet plus two more 48 GB cards — 272 GB: every phase's hot set fits
 * with room to spare (though not the whole catalog at once), the fleet an operator sizes for
 * its traffic. `--fleet provisioned` runs on it; see capacity.ts for how the two compare.
 */
export const PROVISIONED_NODES: readonly NodeSpec[] = [
  ...DEFAULT_NODES,
  { name: 'node-e-48gb', gpu_name: 'Simulated L40S 48 GB', vram_bytes: 48e9 },
  { name: 'node-f-48gb', gpu_name: 'Simulated L40S 48 GB', vram_bytes: 48e9 },
];

export const FLEETS: Readonly<Record<string, readonly NodeSpec[]>> = { default: DEFAULT_NODES, provisioned: PROVISIONED_NODES };

/** How each node's "Ollama" is configured; the same on every node and for every policy. */
export interface SimSettings {
  /** Multiplies every simulated delay: 0.1 = the simulated world runs 10× faster than the wall clock. */
  time_scale: number;
  /** OLLAMA_NUM_PARALLEL. */
  num_parallel: number;
  /** OLLAMA_MAX_LOADED_MODELS; 0 = VRAM alone decides. */
  max_loaded_models: number;
  load_bytes_per_s: number;
  load_overhead_ms: number;
  vram_overhead_bytes: number;
  num_ctx: number;
  response_tokens_min: number;
  response_tokens_max: number;
}

export const DEFAULT_SIM_SETTINGS: SimSettings = {
  time_scale: 0.1,
  num_parallel: 4,
  // Ollama's default is 3 per GPU. VRAM-only gives every policy the most room; a cap of 3
  // would make round-robin thrash harder, which would flatter Switchyard.
  max_loaded_models: 0,
  // gpu-sim defaults: 2 GB/s from disk to VRAM plus 300 ms to start a runner.
  load_bytes_per_s: 2e9,
  load_overhead_ms: 300,
  vram_overhead_bytes: 512 * 2 ** 20,
  num_ctx: 4_096,
  response_tokens_min: 16,
  response_tokens_max: 64,
};

export function simConfig(node: NodeSpec, settings: SimSettings, models: readonly CatalogModel[]): GpuSimConfigInput {
  return {
    host: '127.0.0.1',
    port: 0,
    gpu_name: node.gpu_name,
    vram_bytes: node.vram_bytes,
    vram_overhead_bytes: settings.vram_overhead_bytes,
    time_scale: settings.time_scale,
    load_bytes_per_s: settings.load_bytes_per_s,
    load_overhead_ms: settings.load_overhead_ms,
    num_parallel: settings.num_parallel,
    max_loaded_models: settings.max_loaded_models,
    num_ctx: settings.num_ctx,
    response_tokens_min: settings.response_tokens_min,
    response_tokens_max: settings.response_tokens_max,
    // Requests always carry options.seed; this only matters for ones that do not.
    default_seed: 0,
    log_level: 'warn',
    models: simCatalog(models),
  };
}
