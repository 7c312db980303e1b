export { createGpuSim, type GpuSim, type GpuSimOptions } from './gpu-sim.js';
export { ConfigError, GpuSimConfig, USAGE, loadConfig, parseConfig, type GpuSimConfigInput } from './config.js';
export { ModelSpec, type ModelSpecInput } from './model-spec.js';
export { SAMPLE_CATALOG, SAMPLE_REGISTRY } from './sample-catalog.js';
export { estimateVramBytes, kvCacheBytesPerToken } from './vram-estimate.js';
export { parseKeepAlive } from '@switchyard/protocol';
export type { Hold, HoldOptions } from './holds.js';
export type { SimStats, LoadedModelStats } from './sim-stats.js';
