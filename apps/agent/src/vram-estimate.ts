/**
 * A model's VRAM need before it has ever been loaded, following Ollama's own estimate:
 * weights + KV cache for `num_ctx × num_parallel` tokens + compute graph + the CUDA
 * minimum (~457 MiB). Once the model has been loaded anywhere in the fleet, the true
 * figure from `/api/ps` (`size_vram`) replaces this (see FleetState).
 *
 * KV per token per layer = (head_dim_k + head_dim_v) × n_kv_heads × 2 bytes (f16), with
 * head_dim = embedding_length / head_count unless the model states key/value lengths.
 * Graph (Ollama's llama formula for full offload): 4 × batch × (1 + 4 × embedding +
 * context × (1 + heads)) bytes, with batch 512.
 */

import { vramNeedAtContext, type VramProfile } from '@switchyard/protocol';

export const CUDA_MINIMUM_BYTES = 457 * 2 ** 20;
const BATCH = 512;
/** Without architecture numbers: KV + graph as a share of the weights (8B at 4k ctx ≈ 20 %). */
const UNKNOWN_ARCH_SHARE = 0.25;

export interface ArchitectureNumbers {
  contextLength?: number;
  blockCount?: number;
  headCount?: number;
  headCountKv?: number;
  embeddingLength?: number;
  keyLength?: number;
  valueLength?: number;
}

/** Reads architecture numbers out of an Ollama `/api/show` body's `model_info`. */
export function architectureFromShow(show: Record<string, unknown>): ArchitectureNumbers {
  const info = (show.model_info ?? {}) as Record<string, unknown>;
  const arch = typeof info['general.architecture'] === 'string' ? info['general.architecture'] : undefined;
  const num = (key: string): number | undefined => {
    if (!arch) return undefined;
    const value = info[`${arch}.${key}`];
    return typeof value === 'number' && Number.isFinite(value) && value > 0 ? value : undefined;
  };
  return {
    contextLength: num('context_length'),
    blockCount: num('block_count'),
    headCount: num('attention.head_count'),
    headCountKv: num('attention.head_count_kv'),
    embeddingLength: num('embedding_length'),
    keyLength: num('attention.key_length'),
    valueLength: num('attention.value_length'),
  };
}

export function kvBytesPerToken(arch: ArchitectureNumbers): number | undefined {
  const { blockCount, headCount, headCountKv, embeddingLength } = arch;
  if (!blockCount || !headCountKv) return undefined;
  const headDim = headCount && embeddingLength ? embeddingLength / headCount : undefined;
  const keyDim = arch.keyLength ?? headDim;
  const valueDim = arch.valueLength ?? headDim;
  if (!keyDim || !valueDim) return undefined;
  return (keyDim + valueDim) * headCountKv * 2 * blockCount;
}

/**
 * The estimate as a profile (see VramProfile): what does not depend on context, and what each
 * token of context adds in each of `parallel` slots. Undefined without architecture numbers.
 */
export function vramProfile(weightsBytes: number, arch: ArchitectureNumbers, parallel: number): VramProfile | undefined {
  const kvPerToken = kvBytesPerToken(arch);
  if (kvPerToken === undefined || !arch.embeddingLength || !arch.headCount) return undefined;
  return {
    fixed_bytes: weightsBytes + 4 * BATCH * (1 + 4 * arch.embeddingLength) + CUDA_MINIMUM_BYTES,
    bytes_per_token: kvPerToken + 4 * BATCH * (1 + arch.headCount),
    num_parallel: parallel,
    ...(arch.contextLength !== undefined && { context_length: arch.contextLength }),
  };
}

export function estimateVramBytes(weightsBytes: number, arch: ArchitectureNumbers, load: { numCtx: number; parallel: number }): number {
  const profile = vramProfile(weightsBytes, arch, load.parallel);
  if (profile === undefined) return Math.ceil(weightsBytes * (1 + UNKNOWN_ARCH_SHARE) + CUDA_MINIMUM_BYTES);
  return vramNeedAtContext(profile, load.numCtx);
}
