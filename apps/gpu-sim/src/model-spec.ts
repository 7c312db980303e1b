/**
 * One entry of the simulated model catalog, as written in a config file, and the fully
 * resolved form the simulator works with.
 *
 * Every derived field is written back into the resolved object, so a resolved spec is also a
 * valid (and equivalent) config entry: parsing twice changes nothing.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { ByteSize, canonicalModelName } from '@switchyard/protocol';

const positiveInt = z.number().int().positive();
const positive = z.number().positive();

/** Bits per weight of common GGUF quantizations, to estimate a parameter count from a file size. */
const BITS_PER_WEIGHT: Readonly<Record<string, number>> = {
  Q4_0: 4.55,
  Q4_1: 5.0,
  Q4_K_S: 4.6,
  Q4_K_M: 4.85,
  Q5_0: 5.5,
  Q5_K_S: 5.5,
  Q5_K_M: 5.7,
  Q6_K: 6.6,
  Q8_0: 8.5,
  F16: 16,
  BF16: 16,
  F32: 32,
};

/** GGUF `general.file_type` of those quantizations, for `/api/show`. */
export const GGUF_FILE_TYPE: Readonly<Record<string, number>> = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q8_0: 7,
  Q5_0: 8,
  Q4_K_S: 14,
  Q4_K_M: 15,
  Q5_K_S: 16,
  Q5_K_M: 17,
  Q6_K: 18,
  BF16: 32,
};

/**
 * Architecture used when a catalog entry gives none: the shape of a typical model of that
 * parameter count (Qwen2.5-0.5B, Llama-3.2-3B, Llama-3.1-8B, a 14B, a 32B, Llama-3.1-70B).
 */
const REFERENCE_SHAPES = [
  { upTo: 1.5e9, block_count: 24, embedding_length: 896, head_count: 14, head_count_kv: 2 },
  { upTo: 5e9, block_count: 28, embedding_length: 3072, head_count: 24, head_count_kv: 8 },
  { upTo: 11e9, block_count: 32, embedding_length: 4096, head_count: 32, head_count_kv: 8 },
  { upTo: 20e9, block_count: 48, embedding_length: 5120, head_count: 40, head_count_kv: 8 },
  { upTo: 40e9, block_count: 64, embedding_length: 5120, head_count: 40, head_count_kv: 8 },
  { upTo: Number.POSITIVE_INFINITY, block_count: 80, embedding_length: 8192, head_count: 64, head_count_kv: 8 },
] as const;

/** Ollama's `format.HumanNumber`-style label: `494.03M`, `3.2B`, `70.6B`. */
export function parameterSizeLabel(count: number): string {
  if (count >= 1e9) return `${(count / 1e9).toFixed(1)}B`;
  if (count >= 1e6) return `${(count / 1e6).toFixed(2)}M`;
  if (count >= 1e3) return `${(count / 1e3).toFixed(2)}K`;
  return String(count);
}

/** A stable sha256 for a model that has none configured: same name, same digest, every run. */
export function derivedDigest(name: string): string {
  return createHash('sha256').update(`switchyard-gpu-sim:${name}`).digest('hex');
}

/**
 * An embedding model (`/api/show` capabilities `["embedding"]`): it serves `/api/embed` and
 * `/api/embeddings` only, one call at a time (Ollama loads embedding models with one parallel
 * sequence). The call times, when given, replace the global `embed_call_ms`/`embed_input_ms`/
 * `embed_token_ms` for this model.
 */
export const EmbeddingSpec = z.strictObject({
  /** Length of the vectors; default the model's `embedding_length`. */
  dimensions: positiveInt.optional(),
  call_ms: z.number().nonnegative().optional(),
  input_ms: z.number().nonnegative().optional(),
  token_ms: z.number().nonnegative().optional(),
});

/** Ollama's capability names, in the order `/api/show` lists them. */
export type ModelCapability = 'completion' | 'embedding' | 'tools' | 'vision';

export const ModelSpec = z
  .strictObject({
    /** `name:tag`; `latest` is added when the tag is missing. */
    name: z.string().min(1).transform(canonicalModelName),
    /** Weights on disk (`size` in `/api/tags`). */
    size_bytes: ByteSize.pipe(positiveInt),
    /** `sha256:<64 hex>` or bare hex; derived from the name when missing. Served as bare hex, like Ollama. */
    digest: z
      .string()
      .regex(/^(sha256:)?[0-9a-fA-F]{64}$/, 'expected sha256:<64 hex digits>')
      .transform((digest) => digest.replace(/^sha256:/, '').toLowerCase())
      .optional(),
    format: z.string().min(1).default('gguf'),
    /** Also the architecture name used for `model_info` keys (`llama.block_count`). */
    family: z.string().min(1).default('llama'),
    families: z.array(z.string()).optional(),
    parameter_size: z.string().min(1).optional(),
    quantization_level: z.string().min(1).default('Q4_K_M'),
    /** Trained context length (`<arch>.context_length`); requests' num_ctx is clamped to it. */
    context_length: positiveInt.default(8192),
    parameter_count: positiveInt.optional(),
    block_count: positiveInt.optional(),
    head_count: positiveInt.optional(),
    head_count_kv: positiveInt.optional(),
    embedding_length: positiveInt.optional(),
    /** Total VRAM the loaded model takes; when absent it is estimated (see vram-estimate.ts). */
    vram_bytes: ByteSize.pipe(positiveInt).optional(),
    /** Generation speed of this model; the global `tokens_per_s` when absent. */
    tokens_per_s: positive.optional(),
    /** Prompt processing speed of this model; the global `prompt_tokens_per_s` when absent. */
    prompt_tokens_per_s: positive.optional(),
    license: z.string().optional(),
    template: z.string().default('{{ if .System }}{{ .System }}\n{{ end }}{{ .Prompt }}'),
    /** `/api/show` parameters text (Ollama pads each key to 30 columns). */
    parameters: z.string().default(`${'stop'.padEnd(30)} "</s>"`),
    /** RFC 3339; defaults to the moment the config was read. */
    modified_at: z.iso.datetime({ offset: true }).optional(),
    /** Present for an embedding model (which then does no chat or generate); see EmbeddingSpec. */
    embedding: EmbeddingSpec.optional(),
    /** A chat model that can call tools (capability `tools`). */
    tools: z.boolean().default(false),
    /** A chat model that reads images (capability `vision`). */
    vision: z.boolean().default(false),
    /**
     * A newer build of the same name that the simulated registry also serves (pulled as
     * `name@sha256:<digest>`), to roll out to. Ignored for serving.
     */
    newer: z
      .strictObject({
        digest: z
          .string()
          .regex(/^(sha256:)?[0-9a-fA-F]{64}$/, 'expected sha256:<64 hex digits>')
          .transform((digest) => digest.replace(/^sha256:/, '').toLowerCase()),
        size_bytes: ByteSize.pipe(positiveInt).optional(),
      })
      .optional(),
  })
  .superRefine((spec, ctx) => {
    if (!spec.embedding) return;
    for (const field of ['tools', 'vision'] as const) {
      if (spec[field]) ctx.addIssue({ code: 'custom', path: [field], message: 'an embedding model (with `embedding`) cannot have it' });
    }
  })
  .transform((spec) => {
    const bitsPerWeight = BITS_PER_WEIGHT[spec.quantization_level.toUpperCase()] ?? 4.85;
    const parameterCount = spec.parameter_count ?? Math.round((spec.size_bytes * 8) / bitsPerWeight);
    const shape = REFERENCE_SHAPES.find((candidate) => parameterCount <= candidate.upTo) ?? REFERENCE_SHAPES[5];
    return {
      ...spec,
      digest: spec.digest ?? derivedDigest(spec.name),
      families: spec.families ?? [spec.family],
      parameter_count: parameterCount,
      parameter_size: spec.parameter_size ?? parameterSizeLabel(parameterCount),
      block_count: spec.block_count ?? shape.block_count,
      head_count: spec.head_count ?? shape.head_count,
      head_count_kv: spec.head_count_kv ?? shape.head_count_kv,
      embedding_length: spec.embedding_length ?? shape.embedding_length,
      ...(spec.embedding && { embedding: { ...spec.embedding, dimensions: spec.embedding.dimensions ?? spec.embedding_length ?? shape.embedding_length } }),
      modified_at: spec.modified_at ?? new Date().toISOString(),
    };
  });
export type ModelSpec = z.infer<typeof ModelSpec>;
export type ModelSpecInput = z.input<typeof ModelSpec>;

/** What `/api/show` reports: `["embedding"]` for an embedding model, else `completion` plus `tools` and `vision` as configured. */
export function modelCapabilities(model: ModelSpec): ModelCapability[] {
  if (model.embedding) return ['embedding'];
  return ['completion', ...(model.tools ? (['tools'] as const) : []), ...(model.vision ? (['vision'] as const) : [])];
}
