import { SAMPLE_CATALOG } from '@switchyard/gpu-sim';

/**
 * The two simulated GPU nodes of the local stack: a 24 GB card that holds the three small
 * sample models (never the 70B) and an 80 GB card that holds all four.
 */
export const SIM_NODES = [
  {
    name: 'gpu-sim-24gb',
    config: {
      gpu_name: 'Simulated RTX 4090 24 GB',
      vram_bytes: 24e9,
      models: SAMPLE_CATALOG.filter((model) => model.name !== 'llama3.1:70b'),
    },
  },
  {
    name: 'gpu-sim-80gb',
    config: {
      gpu_name: 'Simulated A100 80 GB',
      vram_bytes: 80e9,
      models: [...SAMPLE_CATALOG],
    },
  },
] as const;
