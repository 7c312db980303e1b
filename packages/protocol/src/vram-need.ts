import { z } from 'zod';

/**
 * How a model's VRAM need on a node grows with the context it is loaded with, as the node's
 * agent estimates it (weights and fixed overheads, plus KV cache and compute graph per token
 * of context in each parallel slot). Agents put it in their heartbeats so the API can judge a
 * job's own `num_ctx` at submit with the very rule the agent uses.
 */
export const VramProfile = z.object({
  /** The part that does not depend on context: weights, the fixed part of the graph, the CUDA minimum. */
  fixed_bytes: z.number().nonnegative(),
  /** VRAM one token of context takes in one slot (KV cache plus its share of the graph). */
  bytes_per_token: z.number().nonnegative(),
  /** Slots a loaded copy has: the backend allocates the context once per slot (OLLAMA_NUM_PARALLEL). */
  num_parallel: z.number().int().positive(),
  /** The model's trained context length; a larger num_ctx is loaded at this length (Ollama caps it). */
  context_length: z.number().int().positive().optional(),
});
export type VramProfile = z.infer<typeof VramProfile>;

/** VRAM a copy of the model takes when loaded with `numCtx` tokens of context per slot. */
export function vramNeedAtContext(profile: VramProfile, numCtx: number): number {
  const loadedCtx = Math.min(numCtx, profile.context_length ?? numCtx);
  return Math.ceil(profile.fixed_bytes + profile.bytes_per_token * loadedCtx * profile.num_parallel);
}

/**
 * VRAM a job makes its model take on a node because of its own `num_ctx` (Ollama reloads a
 * model whose context differs from the request's). Undefined when the job asks no context of
 * its own, or when the node reported no profile (an older agent, or an architecture it could
 * not read): then only the model's own need counts, as before per-job checks existed.
 */
export function jobContextVramBytes(profile: VramProfile | undefined, options: { num_ctx?: number } | undefined): number | undefined {
  const numCtx = options?.num_ctx;
  if (profile === undefined || typeof numCtx !== 'number' || !(numCtx > 0)) return undefined;
  return vramNeedAtContext(profile, numCtx);
}
