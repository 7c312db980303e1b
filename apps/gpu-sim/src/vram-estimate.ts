/**
 * How much VRAM a loaded model takes, after Ollama's own estimate: weights, plus the KV cache
 * for `num_ctx × num_parallel` tokens, plus a fixed overhead (CUDA context and compute graph;
 * Ollama budgets ~457 MiB of CUDA minimum alone).
 *
 * KV cache per token = 2 (K and V) × head_dim × head_count_kv × 2 bytes (f16) × block_count,
 * with head_dim = embedding_length / head_count. Llama-3.1-8B: 2 × 128 × 8 × 2 × 32 = 128 KiB
 * per token, so 4 slots × 4096 tokens add 2 GiB to its 4.9 GB of weights.
 *
 * A catalog entry's `vram_bytes` replaces the whole estimate (handy for tests and for models
 * measured on real hardware).
 */
import type { ModelSpec } from './model-spec.js';

export function kvCacheBytesPerToken(model: ModelSpec): number {
  const headDim = model.embedding_length / model.head_count;
  return Math.ceil(2 * headDim * model.head_count_kv * 2 * model.block_count);
}

export interface VramInputs {
  numCtx: number;
  numParallel: number;
  overheadBytes: number;
}

export function estimateVramBytes(model: ModelSpec, inputs: VramInputs): number {
  if (model.vram_bytes !== undefined) return model.vram_bytes;
  return model.size_bytes + kvCacheBytesPerToken(model) * inputs.numCtx * inputs.numParallel + inputs.overheadBytes;
}
