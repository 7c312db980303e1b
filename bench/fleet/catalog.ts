/**
 * The fleet's model catalog: 20 models of the Ollama library at their default (Q4) tags,
 * from 0.4 GB to 40 GB. Sizes are the download sizes the library lists, rounded as ollama.com
 * shows them (exact byte counts only for the three models shared with gpu-sim's sample
 * catalog); parameter counts are approximate. Architecture numbers (layers, attention heads,
 * KV heads, embedding width, trained context) follow the models' published configs, so
 * gpu-sim's VRAM estimate — weights + KV cache for num_ctx × num_parallel + overhead —
 * lands where Ollama's own would. Token rates are rough single-stream Q4 rates on a
 * datacenter GPU; they only set how long a request holds its slot.
 *
 * gpu-sim derives head_dim as embedding_length / head_count. For the few models whose real
 * head_dim differs (Gemma 2, Mistral NeMo, Mistral Small 3) the KV estimate is off by the
 * ratio; that is noted per entry and accepted: it moves their footprint by < 2 GB.
 */
import { ModelSpec, estimateVramBytes, type ModelSpecInput } from '@switchyard/gpu-sim';

export interface CatalogModel {
  name: string;
  size_bytes: number;
  family: string;
  parameter_count: number;
  context_length: number;
  block_count: number;
  head_count: number;
  head_count_kv: number;
  embedding_length: number;
  tokens_per_s: number;
  prompt_tokens_per_s: number;
}

export const FLEET_CATALOG: readonly CatalogModel[] = [
  // Exact sizes (gpu-sim sample catalog).
  {
    name: 'qwen2.5:0.5b',
    size_bytes: 397_821_319,
    family: 'qwen2',
    parameter_count: 494_032_768,
    context_length: 32_768,
    block_count: 24,
    head_count: 14,
    head_count_kv: 2,
    embedding_length: 896,
    tokens_per_s: 220,
    prompt_tokens_per_s: 8_000,
  },
  {
    name: 'llama3.2:1b',
    size_bytes: 1.3e9,
    family: 'llama',
    parameter_count: 1_235_814_432,
    context_length: 131_072,
    block_count: 16,
    head_count: 32,
    head_count_kv: 8,
    embedding_length: 2_048,
    tokens_per_s: 170,
    prompt_tokens_per_s: 6_000,
  },
  // Gemma 2 2B: real head_dim 256 (estimate uses 288).
  {
    name: 'gemma2:2b',
    size_bytes: 1.6e9,
    family: 'gemma2',
    parameter_count: 2_614_341_888,
    context_length: 8_192,
    block_count: 26,
    head_count: 8,
    head_count_kv: 4,
    embedding_length: 2_304,
    tokens_per_s: 130,
    prompt_tokens_per_s: 5_000,
  },
  {
    name: 'llama3.2:3b',
    size_bytes: 2_019_393_189,
    family: 'llama',
    parameter_count: 3_212_749_888,
    context_length: 131_072,
    block_count: 28,
    head_count: 24,
    head_count_kv: 8,
    embedding_length: 3_072,
    tokens_per_s: 110,
    prompt_tokens_per_s: 4_000,
  },
  // Phi-3 mini: no grouped-query attention (32 KV heads), so its KV cache outweighs its weights.
  {
    name: 'phi3:3.8b',
    size_bytes: 2.2e9,
    family: 'phi3',
    parameter_count: 3_821_079_552,
    context_length: 4_096,
    block_count: 32,
    head_count: 32,
    head_count_kv: 32,
    embedding_length: 3_072,
    tokens_per_s: 100,
    prompt_tokens_per_s: 3_500,
  },
  {
    name: 'mistral:7b',
    size_bytes: 4.1e9,
    family: 'llama',
    parameter_count: 7_248_023_552,
    context_length: 32_768,
    block_count: 32,
    head_count: 32,
    head_count_kv: 8,
    embedding_length: 4_096,
    tokens_per_s: 70,
    prompt_tokens_per_s: 2_800,
  },
  {
    name: 'qwen2.5:7b',
    size_bytes: 4.7e9,
    family: 'qwen2',
    parameter_count: 7_615_616_512,
    context_length: 32_768,
    block_count: 28,
    head_count: 28,
    head_count_kv: 4,
    embedding_length: 3_584,
    tokens_per_s: 65,
    prompt_tokens_per_s: 2_700,
  },
  {
    name: 'llama3.1:8b',
    size_bytes: 4_920_753_328,
    family: 'llama',
    parameter_count: 8_030_261_248,
    context_length: 131_072,
    block_count: 32,
    head_count: 32,
    head_count_kv: 8,
    embedding_length: 4_096,
    tokens_per_s: 60,
    prompt_tokens_per_s: 2_500,
  },
  // Gemma 2 9B: real head_dim 256 (estimate uses 224).
  {
    name: 'gemma2:9b',
    size_bytes: 5.4e9,
    family: 'gemma2',
    parameter_count: 9_241_705_984,
    context_length: 8_192,
    block_count: 42,
    head_count: 16,
    head_count_kv: 8,
    embedding_length: 3_584,
    tokens_per_s: 50,
    prompt_tokens_per_s: 2_000,
  },
  // Mistral NeMo: real head_dim 128 (estimate uses 160).
  {
    name: 'mistral-nemo:12b',
    size_bytes: 7.1e9,
    family: 'llama',
    parameter_count: 12_247_782_400,
    context_length: 1_024_000,
    block_count: 40,
    head_count: 32,
    head_count_kv: 8,
    embedding_length: 5_120,
    tokens_per_s: 42,
    prompt_tokens_per_s: 1_600,
  },
  {
    name: 'qwen2.5:14b',
    size_bytes: 9.0e9,
    family: 'qwen2',
    parameter_count: 14_770_033_664,
    context_length: 32_768,
    block_count: 48,
    head_count: 40,
    head_count_kv: 8,
    embedding_length: 5_120,
    tokens_per_s: 35,
    prompt_tokens_per_s: 1_300,
  },
  {
    name: 'deepseek-r1:14b',
    size_bytes: 9.0e9,
    family: 'qwen2',
    parameter_count: 14_770_033_664,
    context_length: 131_072,
    block_count: 48,
    head_count: 40,
    head_count_kv: 8,
    embedding_length: 5_120,
    tokens_per_s: 35,
    prompt_tokens_per_s: 1_300,
  },
  {
    name: 'phi4:14b',
    size_bytes: 9.1e9,
    family: 'phi3',
    parameter_count: 14_659_507_200,
    context_length: 16_384,
    block_count: 40,
    head_count: 40,
    head_count_kv: 10,
    embedding_length: 5_120,
    tokens_per_s: 35,
    prompt_tokens_per_s: 1_300,
  },
  // Mistral Small 3: real head_dim 128 (estimate uses 160).
  {
    name: 'mistral-small:24b',
    size_bytes: 14e9,
    family: 'llama',
    parameter_count: 23_572_403_200,
    context_length: 32_768,
    block_count: 40,
    head_count: 32,
    head_count_kv: 8,
    embedding_length: 5_120,
    tokens_per_s: 24,
    prompt_tokens_per_s: 900,
  },
  // Gemma 2 27B: real head_dim 128 (estimate uses 144).
  {
    name: 'gemma2:27b',
    size_bytes: 16e9,
    family: 'gemma2',
    parameter_count: 27_227_128_320,
    context_length: 8_192,
    block_count: 46,
    head_count: 32,
    head_count_kv: 16,
    embedding_length: 4_608,
    tokens_per_s: 22,
    prompt_tokens_per_s: 800,
  },
  {
    name: 'codellama:34b',
    size_bytes: 19e9,
    family: 'llama',
    parameter_count: 33_743_970_304,
    context_length: 16_384,
    block_count: 48,
    head_count: 64,
    head_count_kv: 8,
    embedding_length: 8_192,
    tokens_per_s: 18,
    prompt_tokens_per_s: 650,
  },
  {
    name: 'qwen2.5:32b',
    size_bytes: 20e9,
    family: 'qwen2',
    parameter_count: 32_763_876_352,
    context_length: 32_768,
    block_count: 64,
    head_count: 40,
    head_count_kv: 8,
    embedding_length: 5_120,
    tokens_per_s: 18,
    prompt_tokens_per_s: 650,
  },
  {
    name: 'deepseek-r1:32b',
    size_bytes: 20e9,
    family: 'qwen2',
    parameter_count: 32_763_876_352,
    context_length: 131_072,
    block_count: 64,
    head_count: 40,
    head_count_kv: 8,
    embedding_length: 5_120,
    tokens_per_s: 18,
    prompt_tokens_per_s: 650,
  },
  // Mixtral 8x7B: a mixture of experts, so faster per token than its size suggests.
  {
    name: 'mixtral:8x7b',
    size_bytes: 26e9,
    family: 'llama',
    parameter_count: 46_702_792_704,
    context_length: 32_768,
    block_count: 32,
    head_count: 32,
    head_count_kv: 8,
    embedding_length: 4_096,
    tokens_per_s: 30,
    prompt_tokens_per_s: 700,
  },
  {
    name: 'llama3:70b',
    size_bytes: 40e9,
    family: 'llama',
    parameter_count: 70_553_706_496,
    context_length: 8_192,
    block_count: 80,
    head_count: 64,
    head_count_kv: 8,
    embedding_length: 8_192,
    tokens_per_s: 12,
    prompt_tokens_per_s: 400,
  },
];

/** The catalog in gpu-sim's config format (every node serves all of it). */
export function simCatalog(models: readonly CatalogModel[] = FLEET_CATALOG): ModelSpecInput[] {
  return models.map((model) => ({ ...model, quantization_level: 'Q4_K_M', format: 'gguf' }));
}

/** VRAM gpu-sim reserves for a loaded model (its own estimate), at num_ctx capped by the model's context. */
export function vramNeedBytes(model: CatalogModel, numCtx: number, numParallel: number, overheadBytes: number): number {
  const spec = ModelSpec.parse(simCatalog([model])[0]);
  return estimateVramBytes(spec, { numCtx: Math.min(numCtx, model.context_length), numParallel, overheadBytes });
}

/** Nominal (unscaled) seconds a load of this model keeps a GPU busy, as gpu-sim models it. */
export function loadSeconds(model: CatalogModel, loadBytesPerS: number, loadOverheadMs: number): number {
  return loadOverheadMs / 1_000 + model.size_bytes / loadBytesPerS;
}

/** `loadSeconds` by model name over a catalog; 0 for a name it does not hold. */
export function loadSecondsByName(catalog: readonly CatalogModel[], loadBytesPerS: number, loadOverheadMs: number): (name: string) => number {
  const byName = new Map(catalog.map((model) => [model.name, model]));
  return (name) => {
    const model = byName.get(name);
    return model ? loadSeconds(model, loadBytesPerS, loadOverheadMs) : 0;
  };
}

/**
 * "One model load", the bar of the p99 queue-wait target: the median nominal load time over
 * the catalog, fixed by the catalog and the load throughput so it does not move with the
 * policy being judged.
 */
export function medianLoadSeconds(catalog: readonly CatalogModel[], loadBytesPerS: number, loadOverheadMs: number): number {
  const loads = catalog.map((model) => loadSeconds(model, loadBytesPerS, loadOverheadMs)).sort((a, b) => a - b);
  const mid = loads.length / 2;
  return loads.length % 2 === 0 ? ((loads[mid - 1] as number) + (loads[mid] as number)) / 2 : (loads[Math.floor(mid)] as number);
}
